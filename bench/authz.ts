// `npm run bench -- authz`: what authorization costs per request, on a cluster with many
// bindings: the union of node authorizer and RBAC answering from an in-process apiserver's watch
// caches (memory store). Each case is timed over a batch of calls (one call is too short to time
// alone); the figure is the time per call. Also: one policy change re-checking 1,000 open watches.
import { create } from "@bufbuild/protobuf";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { NamespaceSchema } from "../gen/skiff/v1alpha1/namespace_pb.js";
import { PodSchema } from "../gen/skiff/v1alpha1/pod_pb.js";
import { ClusterRoleBindingSchema, RoleBindingSchema } from "../gen/skiff/v1alpha1/rbac_pb.js";
import type { ApiObject } from "../internal/api/registry.ts";
import { startApiServer } from "../internal/apiserver/server.ts";
import type { RequestAttributes, UserInfo } from "../internal/auth/types.ts";
import { createMemoryStore } from "../internal/storage/memory.ts";
import { testPki } from "../internal/pki/testing.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { summarize } from "./lib/stats.ts";
import { renderTable } from "./lib/table.ts";

const HELP = `usage: npm run bench -- authz [--namespaces N] [--nodes N] [--calls N]

  --namespaces N  namespaces, each with 5 RoleBindings and 20 pods (default 200)
  --nodes N       nodes the pods are spread over (default 100)
  --calls N       authorize() calls per case (default 200000)`;

const RBAC = "rbac.authorization.k8s.io";
const BATCH = 1000;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { namespaces: { type: "string", default: "200" }, nodes: { type: "string", default: "100" }, calls: { type: "string", default: "200000" }, help: { type: "boolean" } } });
  if (values.help) return void console.log(HELP);
  const namespaces = Number(values.namespaces);
  const nodes = Number(values.nodes);
  const calls = Number(values.calls);

  const server = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0, initialNamespaces: ["default", "skiff-system"] });
  onCleanup(() => server.close());
  // The newest revision written per kind: the authorizer reads the caches, which follow storage.
  const written = new Map<string, number>();
  const put = async (kind: string, obj: ApiObject) => {
    const stored = await server.ops.get(kind)!.create(obj);
    written.set(kind, Number(stored.metadata!.resourceVersion));
  };
  const started = performance.now();
  for (let n = 0; n < namespaces; n++) {
    const ns = `team-${n}`;
    await put("Namespace", create(NamespaceSchema, { metadata: { name: ns } }));
    for (let b = 0; b < 5; b++) {
      const role = ["view", "edit", "admin", "view", "edit"][b];
      await put("RoleBinding", create(RoleBindingSchema, { metadata: { name: `rb-${b}`, namespace: ns }, roleRef: { apiGroup: RBAC, kind: "ClusterRole", name: role }, subjects: [{ kind: "User", apiGroup: RBAC, name: `user-${n}-${b}` }, { kind: "Group", apiGroup: RBAC, name: `group-${n}` }] }));
    }
    for (let p = 0; p < 20; p++) {
      const pod = create(PodSchema, {
        metadata: { name: `p-${p}`, namespace: ns },
        spec: { nodeName: `node-${(n * 20 + p) % nodes}`, containers: [{ name: "c", image: "i", env: [{ name: "X", valueFrom: { secretKeyRef: { name: `s-${p}`, key: "k" } } }] }] },
      });
      await put("Pod", pod);
    }
  }
  for (let c = 0; c < 100; c++) {
    const crb = create(ClusterRoleBindingSchema, { metadata: { name: `crb-${c}` }, roleRef: { apiGroup: RBAC, kind: "ClusterRole", name: "view" }, subjects: [{ kind: "Group", apiGroup: RBAC, name: `readers-${c}` }] });
    await put("ClusterRoleBinding", crb);
  }
  for (const [kind, rev] of written) while (server.caches.get(kind)!.revision() < rev) await new Promise((r) => setTimeout(r, 10));
  console.log(`cluster: ${namespaces} namespaces, ${namespaces * 5} RoleBindings, 100 ClusterRoleBindings, ${namespaces * 20} pods on ${nodes} nodes (set up in ${((performance.now() - started) / 1000).toFixed(1)} s)\n`);

  const { authorizer, revoker } = server.authorization;
  const u = (name: string, ...groups: string[]): UserInfo => ({ name, groups: [...groups, "system:authenticated"] });
  const at = (user: UserInfo, more: Partial<RequestAttributes>): RequestAttributes => ({ user, verb: "get", apiGroup: "", resource: "pods", subresource: "", namespace: "", name: "", ...more });
  const mid = Math.floor(namespaces / 2);
  const cases: [string, RequestAttributes, string][] = [
    ["namespace user, allowed (RoleBinding to view)", at(u(`user-${mid}-0`), { verb: "list", namespace: `team-${mid}` }), "allow"],
    ["namespace user, denied (create)", at(u(`user-${mid}-0`), { verb: "create", namespace: `team-${mid}` }), "deny"],
    ["group member, allowed (ClusterRoleBinding)", at(u("reader", "readers-50"), { verb: "watch" }), "allow"],
    ["unbound user, denied", at(u("stranger", "nobody"), { namespace: `team-${mid}`, name: "p-1" }), "deny"],
    ["node: get a secret its pod uses", at(u("system:node:node-7", "system:nodes"), { resource: "secrets", namespace: "team-0", name: "s-7" }), "allow"],
    ["node: get another node's secret", at(u("system:node:node-7", "system:nodes"), { resource: "secrets", namespace: "team-0", name: "s-8" }), "deny"],
    ["node: watch its pods (field selector)", at(u("system:node:node-7", "system:nodes"), { verb: "watch", fieldSelector: "spec.nodeName=node-7" }), "allow"],
    ["system:masters", at(u("admin", "system:masters"), { verb: "delete", namespace: "team-1", name: "p-1" }), "allow"],
  ];
  const rows: (string | number)[][] = [];
  for (const [what, a, want] of cases) {
    const got = authorizer.authorize(a).decision;
    if (got !== want) throw new Error(`${what}: expected ${want}, got ${got}`);
    const perCall: number[] = [];
    for (let done = 0; done < calls; done += BATCH) {
      const t0 = performance.now();
      for (let i = 0; i < BATCH; i++) authorizer.authorize(a);
      perCall.push(((performance.now() - t0) * 1e6) / BATCH);
    }
    const s = summarize(perCall);
    rows.push([what, want, s.p50.toFixed(0), s.p99.toFixed(0)]);
  }
  console.log(renderTable(["authorize()", "answer", "p50 ns/call", "p99 ns/call"], rows));

  // Revocation: 1,000 open watches re-checked after one policy change.
  for (let i = 0; i < 1000; i++) revoker.track(at(u(`user-${i % namespaces}-0`), { verb: "watch", namespace: `team-${i % namespaces}` }), () => undefined);
  const t0 = performance.now();
  let checks = 0;
  for (let i = 0; i < 1000; i++) if (revoker.recheck(at(u(`user-${i % namespaces}-0`), { verb: "watch", namespace: `team-${i % namespaces}` })) === undefined) checks++;
  console.log(`\nre-checking 1,000 open watches after a policy change: ${(performance.now() - t0).toFixed(2)} ms (${checks} still allowed)`);
}
