// cordon, uncordon and drain against an in-process apiserver. The test plays the node agent:
// a bound pod being deleted stays until the agent confirms with grace period 0.
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { NodeSchema, type Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { planDrain } from "./drain.ts";
import { startCliTestApi, type CliTestApi } from "./testing.ts";

let api: CliTestApi;
beforeAll(async () => {
  api = await startCliTestApi();
});
afterAll(() => api?.close());

const nodes = () => api.client<Node>("Node");
const pods = () => api.client<Pod>("Pod");

interface PodInit {
  node?: string;
  owner?: string;
  emptyDir?: boolean;
  phase?: string;
  grace?: bigint;
}

function pod(name: string, o: PodInit = {}): Pod {
  return create(PodSchema, {
    metadata: {
      name,
      namespace: "default",
      ownerReferences: o.owner ? [{ apiVersion: "apps/v1", kind: o.owner, name: "owner", uid: "u-1", controller: true }] : [],
    },
    spec: {
      nodeName: o.node ?? "",
      terminationGracePeriodSeconds: o.grace,
      containers: [{ name: "c", image: "i" }],
      volumes: o.emptyDir ? [{ name: "scratch", emptyDir: {} }] : [],
    },
    status: { phase: o.phase ?? "Running" },
  });
}

const names = async (node: string) => (await pods().list("", { fieldSelector: `spec.nodeName=${node}` })).items.map((p) => p.metadata!.name).sort();

describe("planDrain", () => {
  const opts = { force: false, ignoreDaemonSets: false, deleteEmptyDirData: false };
  const all = [
    pod("rs", { owner: "ReplicaSet" }),
    pod("bare"),
    pod("ds", { owner: "DaemonSet" }),
    pod("scratch", { owner: "ReplicaSet", emptyDir: true }),
    pod("done", { phase: "Succeeded", emptyDir: true }),
  ];
  it("refuses what kubectl refuses, naming the pods", () => {
    const plan = planDrain(all, opts);
    expect(plan.refusals).toEqual([
      "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): default/ds",
      "cannot delete Pods with local storage (use --delete-emptydir-data to override): default/scratch",
      "cannot delete Pods that declare no controller (use --force to override): default/bare",
    ]);
    expect(plan.evict.map((p) => p.metadata!.name)).toEqual(["rs", "done"]);
  });
  it("lets them go (or leaves DaemonSet pods) with the flags, and says so", () => {
    const plan = planDrain(all, { force: true, ignoreDaemonSets: true, deleteEmptyDirData: true });
    expect(plan.refusals).toEqual([]);
    expect(plan.warnings).toEqual([
      "ignoring DaemonSet-managed Pods: default/ds",
      "deleting Pods with local storage: default/scratch",
      "deleting Pods that declare no controller: default/bare",
    ]);
    expect(plan.evict.map((p) => p.metadata!.name)).toEqual(["rs", "bare", "scratch", "done"]);
    const mirror = pod("static", { owner: "Node" });
    mirror.metadata!.annotations["kubernetes.io/config.mirror"] = "x";
    expect(planDrain([mirror], opts)).toEqual({ evict: [], warnings: [], refusals: [] });
  });
});

describe("skiffctl cordon, uncordon", () => {
  it("marks a node unschedulable and back, once", async () => {
    await nodes().create(create(NodeSchema, { metadata: { name: "c1", labels: { zone: "a" } } }));
    expect(await api.run(["cordon", "c1"])).toEqual({ code: 0, out: "node/c1 cordoned\n", err: "" });
    expect((await nodes().get("", "c1")).spec!.unschedulable).toBe(true);
    expect(await api.run(["cordon", "node/c1"])).toEqual({ code: 0, out: "node/c1 already cordoned\n", err: "" });
    expect((await api.run(["get", "nodes"])).out).toMatch(/c1 +Unknown,SchedulingDisabled/);
    expect(await api.run(["uncordon", "-l", "zone=a"])).toEqual({ code: 0, out: "node/c1 uncordoned\n", err: "" });
    expect(await api.run(["uncordon", "c1"])).toEqual({ code: 0, out: "node/c1 already uncordoned\n", err: "" });
    expect(await api.run(["cordon", "nope"])).toEqual({ code: 1, out: "", err: 'Error: node "nope" not found\n' });
    expect(await api.run(["cordon"])).toMatchObject({ code: 1, err: "Error: which node? skiffctl cordon NODE\n" });
    expect(await api.run(["cordon", "pod/x"])).toMatchObject({ code: 1, err: 'Error: "pod/x" is not a node: give NODE or node/NODE\n' });
  });
});

describe("skiffctl drain", () => {
  let n = 0;
  let node = "";
  beforeEach(async () => {
    node = `n${++n}`;
    await nodes().create(create(NodeSchema, { metadata: { name: node } }));
  });

  it("refuses a pod no controller owns without --force, evicting nothing", async () => {
    await pods().create(pod(`${node}-rs`, { node, owner: "ReplicaSet" }));
    await pods().create(pod(`${node}-bare`, { node }));
    const r = await api.run(["drain", node]);
    expect(r).toEqual({
      code: 1,
      out: `node/${node} cordoned\n`,
      err: `Error: unable to drain node "${node}": cannot delete Pods that declare no controller (use --force to override): default/${node}-bare\n`,
    });
    expect(await names(node)).toEqual([`${node}-bare`, `${node}-rs`]);
    expect((await nodes().get("", node)).spec!.unschedulable).toBe(true);
  });

  it("evicts, waits for the agent to confirm, then reports the node drained", async () => {
    await pods().create(pod("web-1", { node, owner: "ReplicaSet", grace: 30n }));
    await pods().create(pod("bare", { node }));
    await pods().create(pod("elsewhere", { node: "other", owner: "ReplicaSet" }));
    await pods().create(pod("unbound", { owner: "ReplicaSet" }));
    const run = api.start(["drain", node, "--force"]);
    await run.waitFor(/evicting pod default\/bare\nevicting pod default\/web-1\n/);
    // Being deleted, with the pod's own grace period: still there until its agent confirms.
    const web = await pods().get("default", "web-1");
    expect(web.metadata!.deletionGracePeriodSeconds).toBe(30n);
    await new Promise((r) => setTimeout(r, 700));
    expect(run.out).not.toMatch(/drained/);
    for (const p of ["web-1", "bare"]) await pods().delete("default", p, { gracePeriodSeconds: 0n });
    expect(await run.done).toEqual({
      code: 0,
      err: `Warning: deleting Pods that declare no controller: default/bare\n`,
      out: `node/${node} cordoned\nevicting pod default/bare\nevicting pod default/web-1\npod/bare evicted\npod/web-1 evicted\nnode/${node} drained\n`,
    });
    expect(await names(node)).toEqual([]);
    expect(await names("other")).toEqual(["elsewhere"]);
    expect((await pods().get("default", "unbound")).metadata!.deletionTimestamp).toBeUndefined();
  });

  it("passes --grace-period on; 0 removes bound pods at once", async () => {
    await pods().create(pod(`${node}-a`, { node, owner: "ReplicaSet" }));
    await pods().create(pod(`${node}-b`, { node, owner: "ReplicaSet", emptyDir: true }));
    await pods().create(pod(`${node}-ds`, { node, owner: "DaemonSet" }));
    const r = await api.run(["drain", node, "--grace-period", "0", "--delete-emptydir-data", "--ignore-daemonsets"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`node/${node} cordoned\nevicting pod default/${node}-a\nevicting pod default/${node}-b\npod/${node}-a evicted\npod/${node}-b evicted\nnode/${node} drained\n`);
    expect(r.err).toBe(`Warning: ignoring DaemonSet-managed Pods: default/${node}-ds; deleting Pods with local storage: default/${node}-b\n`);
    expect(await names(node)).toEqual([`${node}-ds`]);
    expect(await api.run(["drain", node, "--ignore-daemonsets"])).toMatchObject({ code: 0, out: `node/${node} already cordoned\nnode/${node} drained\n` });
  });

  it("gives up after --timeout, naming the pods still there", async () => {
    await pods().create(pod(`${node}-slow`, { node, owner: "ReplicaSet" }));
    const r = await api.run(["drain", node, "--timeout", "1s", "--grace-period", "60"]);
    expect(r).toEqual({
      code: 1,
      out: `node/${node} cordoned\nevicting pod default/${node}-slow\n`,
      err: `Error: unable to drain node "${node}": timed out after 1s waiting for pods to be deleted: default/${node}-slow\n`,
    });
    expect((await pods().get("default", `${node}-slow`)).metadata!.deletionGracePeriodSeconds).toBe(60n);
  });

  it("explains bad flags and missing nodes", async () => {
    expect(await api.run(["drain"])).toMatchObject({ code: 1, err: "Error: which node? skiffctl drain NODE\n" });
    expect(await api.run(["drain", node, "--grace-period", "soon"])).toMatchObject({ code: 1, err: expect.stringMatching(/^Error: --grace-period must be a whole number/) });
    expect(await api.run(["drain", node, "--timeout", "5 minutes"])).toMatchObject({ code: 1, err: expect.stringMatching(/^Error: --timeout must be a duration/) });
    expect(await api.run(["drain", "ghost"])).toEqual({ code: 1, out: "", err: 'Error: node "ghost" not found\n' });
  });
});
