// The default policy is enough for every component, and no more than enough is needed: the real
// scheduler, controller-manager (with leader election) and node agent (fake runtime) run a
// Deployment from creation to deletion, each through a transport that authorizes every call it
// makes as that component's identity (what the request pipeline does on the server), with node
// restriction applied to the agent's writes. Not one call is refused, and the work gets done.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigMapSchema, SecretSchema } from "../../gen/skiff/v1alpha1/config_pb.js";
import { DeploymentSchema } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createAgent, type Agent } from "../agent/agent.ts";
import { createHostNetwork } from "../agent/network.ts";
import { testLinkCerts } from "../agent/testing.ts";
import { kinds, type ApiObject } from "../api/registry.ts";
import { createResourceClient } from "../client/resource-client.ts";
import { createApiTransport } from "../client/transport.ts";
import { createControllerManager, type ControllerManager } from "../controller/manager.ts";
import { createFakeRuntime } from "../runtime/fake/fake.ts";
import { createScheduler, type Scheduler } from "../scheduler/scheduler.ts";
import { groupOf } from "./rbac/policy.ts";
import { startAuthTestApi, user, type AuthTestApi } from "./testing.ts";
import type { RequestAttributes, UserInfo, Verb } from "./types.ts";

const VERBS: Record<string, [Verb, string]> = {
  Create: ["create", ""],
  Get: ["get", ""],
  List: ["list", ""],
  Watch: ["watch", ""],
  Update: ["update", ""],
  UpdateStatus: ["update", "status"],
  Delete: ["delete", ""],
  Bind: ["create", "binding"],
};

/** A call as RBAC sees it: kind from the service, verb and subresource from the method. */
function attributesOf(method: DescMethod, req: any, u: UserInfo): { a: RequestAttributes; kind: string; obj?: ApiObject } {
  const kind = kinds.find((k) => k.service.typeName === method.parent.typeName);
  if (!kind) throw new Error(`not a kind's service: ${method.parent.typeName}`);
  const extra = kind.subresourceRpcs?.[method.localName];
  const [verb, subresource] = extra ? [extra.verb, extra.subresource] : VERBS[method.name];
  const obj: ApiObject | undefined = req[kind.field];
  const ns = kind.namespaced ? (obj?.metadata?.namespace ?? req.namespace ?? "") || (verb === "list" || verb === "watch" ? "" : "default") : "";
  const name = verb === "create" && subresource === "" ? "" : (obj?.metadata?.name ?? req.name ?? "");
  if (!VERBS[method.name] && !extra) throw new Error(`no attributes for ${method.parent.typeName}/${method.name}`);
  const a = { user: u, verb, apiGroup: groupOf(kind.apiVersion), resource: kind.plural, subresource, namespace: ns, name, fieldSelector: req.fieldSelector, labelSelector: req.labelSelector };
  return { a, kind: kind.kind, obj };
}

interface Refusal {
  user: string;
  message: string;
}

/** Authorizes (and, for writes, admits) every call as `u` before it leaves; records refusals. */
function authorizing(inner: Transport, api: AuthTestApi, u: UserInfo, refused: Refusal[]): Transport {
  const { authorizer, admit } = api.server.authorization;
  const check = (method: DescMethod, req: unknown) => {
    const { a, kind, obj } = attributesOf(method, req, u);
    const d = authorizer.authorize(a);
    try {
      if (d.decision !== "allow") throw new ConnectError(d.reason, Code.PermissionDenied);
      if (obj && (a.verb === "create" || a.verb === "update")) admit({ user: u, kind, operation: a.verb, object: obj });
    } catch (e) {
      refused.push({ user: u.name, message: `${a.verb} ${a.resource}${a.subresource ? `/${a.subresource}` : ""}: ${(e as ConnectError).rawMessage}` });
      throw e;
    }
  };
  return {
    unary(method, signal, timeoutMs, header, input, values) {
      try {
        check(method, input);
      } catch (e) {
        return Promise.reject(e);
      }
      return inner.unary(method, signal, timeoutMs, header, input, values);
    },
    async stream(method, signal, timeoutMs, header, input, values) {
      const msgs: unknown[] = [];
      for await (const m of input) msgs.push(m);
      check(method, msgs[0]);
      return inner.stream(method, signal, timeoutMs, header, (async function* () { yield* msgs as never[]; })(), values);
    },
  };
}

let api: AuthTestApi;
let dir: string;
const refused: Refusal[] = [];
let scheduler: Scheduler;
let manager: ControllerManager;
let agent: Agent;
const stop = new AbortController();

beforeAll(async () => {
  api = await startAuthTestApi();
  dir = mkdtempSync(join(tmpdir(), "skiff-components-"));
  writeFileSync(join(dir, "resolv.conf"), "nameserver 192.0.2.53\n");
  const plain = createApiTransport(api.server.url);
  const as = (u: UserInfo) => authorizing(plain, api, u, refused);
  const log = pino({ level: process.env.SKIFF_TEST_LOG ?? "silent" });
  agent = createAgent({
    transport: as(user("system:node:n1", "system:nodes")),
    nodeName: "n1",
    runtime: createFakeRuntime(),
    network: createHostNetwork({ podCidr: "10.88.0.0/24", stateDir: join(dir, "network") }),
    rootDir: join(dir, "agent"),
    log,
    listen: { host: "127.0.0.1", port: 0 },
    tls: (await testLinkCerts()).agent,
    heartbeatMs: 200,
    resyncMs: 300,
    podCidr: "10.88.0.0/24",
    resolvConfPath: join(dir, "resolv.conf"),
  });
  await agent.start();
  scheduler = createScheduler({ transport: as(user("system:kube-scheduler")), log });
  await scheduler.start(stop.signal);
  manager = createControllerManager({
    transport: as(user("system:kube-controller-manager")),
    log,
    options: { leaderElect: true, leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 200, identity: "cm-1" },
  });
  await manager.start(stop.signal);
});

afterAll(async () => {
  stop.abort();
  await scheduler?.stop();
  await manager?.stop();
  await agent?.stop();
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, f: () => Promise<T | undefined | false>): Promise<T> {
  for (let i = 0; ; i++) {
    const v = await f();
    if (v) return v;
    if (i > 300) throw new Error(`gave up waiting for ${what}; refused calls: ${JSON.stringify(refused)}`);
    await sleep(50);
  }
}

describe("the default policy and the node authorizer", () => {
  it("let the scheduler, controller-manager and agent run a deployment from start to end, refusing none of their calls", async () => {
    const admin = createApiTransport(api.server.url);
    const client = <T extends ApiObject>(k: string) => createResourceClient<T>(admin, k);
    await client("ConfigMap").create(create(ConfigMapSchema, { metadata: { name: "web-config", namespace: "default" }, data: { greeting: "hi" } }));
    await client("Secret").create(create(SecretSchema, { metadata: { name: "web-tls", namespace: "default" }, data: { key: new TextEncoder().encode("k") } }));
    await client("Deployment").create(
      create(DeploymentSchema, {
        metadata: { name: "web", namespace: "default" },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: "web" } },
          template: {
            metadata: { labels: { app: "web" } },
            spec: {
              containers: [
                {
                  name: "c",
                  image: "skiff.local/busybox:v1",
                  env: [
                    { name: "GREETING", valueFrom: { configMapKeyRef: { name: "web-config", key: "greeting" } } },
                    { name: "KEY", valueFrom: { secretKeyRef: { name: "web-tls", key: "key" } } },
                  ],
                },
              ],
            },
          },
        },
      }),
    );
    const pods = client<Pod>("Pod");
    await until("2 pods running on n1", async () => {
      const { items } = await pods.list("default", { labelSelector: "app=web" });
      return items.length === 2 && items.every((p) => p.spec?.nodeName === "n1" && p.status?.phase === "Running");
    });
    await client("Deployment").delete("default", "web");
    await until("the garbage collector and the agent removed every pod", async () => (await pods.list("default", { labelSelector: "app=web" })).items.length === 0);
    expect(refused).toEqual([]);
    expect(manager.isLeading()).toBe(true);
  }, 60_000);

  it("and the transports really enforce it: a component asking for more is refused", async () => {
    const before = refused.length;
    const sched = authorizing(createApiTransport(api.server.url), api, user("system:kube-scheduler"), refused);
    await expect(createResourceClient(sched, "Secret").get("default", "web-tls")).rejects.toThrow(/cannot get resource "secrets"/);
    const node = authorizing(createApiTransport(api.server.url), api, user("system:node:n1", "system:nodes"), refused);
    await expect(createResourceClient(node, "Secret").get("default", "web-tls")).rejects.toThrow(/no pod bound to node "n1" uses secrets default\/web-tls/);
    expect(refused.length).toBe(before + 2);
  });
});
