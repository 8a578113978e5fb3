// The scheduler end to end on a real etcd: apiserver + 100 hollow Node objects (status with
// allocatable and a Ready condition; no agent) + the scheduler over gRPC. Pods are created
// through the API and the tests watch where they end up.
//
// Nodes: node-000 … node-099, zone z0–z3 (i % 4). node-094 is not Ready. node-095 … node-099
// are the "batch" pool: tainted dedicated=batch:NoSchedule, labelled pool=batch, 2 cpu each.
import { create } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { NodeSchema, type Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { PodService } from "../../gen/skiff/v1alpha1/pod_service_pb.js";
import { createPodBinder, type ResourceClient } from "../../internal/client/resource-client.ts";
import { createScheduler, type Scheduler } from "../../internal/scheduler/scheduler.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

const NODES = 100;
const NOT_READY = "node-094";
const BATCH = ["node-095", "node-096", "node-097", "node-098", "node-099"];
const RACE_POD = "race-me";
const RACE_NODE = "node-010";

let cp: ControlPlane;
let scheduler: Scheduler;
let pods: ResourceClient<Pod>;
let nodes: ResourceClient<Node>;
let events: ResourceClient<Event>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nodeName = (i: number) => `node-${String(i).padStart(3, "0")}`;

async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

function makeNode(i: number, extra: { labels?: Record<string, string>; cpu?: string; taint?: boolean; ready?: string } = {}): Node {
  const name = nodeName(i);
  const allocatable = { cpu: extra.cpu ?? "4", memory: "8Gi", pods: "110" };
  return create(NodeSchema, {
    metadata: { name, labels: { "kubernetes.io/hostname": name, zone: `z${i % 4}`, ...extra.labels } },
    spec: { taints: extra.taint ? [{ key: "dedicated", value: "batch", effect: "NoSchedule" }] : [] },
    status: { capacity: allocatable, allocatable, conditions: [{ type: "Ready", status: extra.ready ?? "True" }] },
  });
}

interface PodOpts {
  cpu?: string;
  memory?: string;
  labels?: Record<string, string>;
  owner?: string;
  nodeSelector?: Record<string, string>;
  affinity?: object;
  batch?: boolean;
}

function makePod(namespace: string, name: string, o: PodOpts = {}): Pod {
  return create(PodSchema, {
    metadata: {
      name,
      namespace,
      labels: o.labels ?? {},
      ownerReferences: o.owner ? [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: o.owner, uid: `uid-rs-${o.owner}`, controller: true }] : [],
    },
    spec: {
      nodeSelector: { ...o.nodeSelector, ...(o.batch ? { pool: "batch" } : {}) },
      affinity: o.affinity as never,
      tolerations: o.batch ? [{ key: "dedicated", operator: "Equal", value: "batch", effect: "NoSchedule" }] : [],
      containers: [{ name: "main", image: "skiff.local/busybox:v1", resources: { requests: { cpu: o.cpu ?? "100m", memory: o.memory ?? "64Mi" } } }],
    },
  });
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

async function namespace(name: string): Promise<string> {
  await cp.client("Namespace").create(create(NamespaceSchema, { metadata: { name } }));
  return name;
}

const list = async (ns: string) => (await pods.list(ns)).items;
const boundTo = async (ns: string, name: string) => (await pods.get(ns, name)).spec?.nodeName ?? "";
const podEvents = async (ns: string, name: string, reason: string) =>
  (await events.list(ns, { fieldSelector: `involvedObject.name=${name},reason=${reason}` })).items;

beforeAll(async () => {
  cp = await startControlPlane();
  pods = cp.client<Pod>("Pod");
  nodes = cp.client<Node>("Node");
  events = cp.client<Event>("Event");
  const all = Array.from({ length: NODES }, (_, i) => {
    if (BATCH.includes(nodeName(i))) return makeNode(i, { labels: { pool: "batch" }, cpu: "2", taint: true });
    if (nodeName(i) === NOT_READY) return makeNode(i, { ready: "False" });
    return makeNode(i, { labels: { pool: "general" } });
  });
  await inParallel(all, 20, (n) => nodes.create(n));

  // Someone else binds RACE_POD to RACE_NODE just before the scheduler's own Bind reaches the
  // apiserver: the scheduler's bind must then fail (FAILED_PRECONDITION) and be skipped.
  const external = createClient(PodService, cp.transport);
  const raceFirst: Interceptor = (next) => async (req) => {
    const msg = req.message as { name?: string; namespace?: string; nodeName?: string };
    if (req.method.name === "Bind" && msg.name === RACE_POD) {
      await external.bind({ namespace: msg.namespace, name: msg.name, nodeName: RACE_NODE });
    }
    return next(req);
  };
  scheduler = createScheduler({
    transport: createGrpcTransport({ nodeOptions: cp.pki.adminNodeOptions, baseUrl: cp.server.url, interceptors: [raceFirst] }),
    backoff: { initialMs: 100, maxMs: 1000 },
  });
  await scheduler.start();
});

afterAll(async () => {
  await scheduler?.stop();
  await cp?.stop();
});

describe("scheduler on 100 nodes", () => {
  it("schedules a burst of 1,000 pods, spread evenly over the nodes that can take them", async () => {
    const ns = await namespace("burst");
    const names = Array.from({ length: 1000 }, (_, i) => `web-${i}`);
    const start = performance.now();
    await inParallel(names, 64, (n) => pods.create(makePod(ns, n, { owner: "web", labels: { app: "web" } })));
    const created = performance.now();
    const placed = await eventually(async () => {
      const items = await list(ns);
      const unbound = items.filter((p) => !p.spec?.nodeName).length;
      if (unbound > 0) throw new Error(`${unbound} pods still unbound`);
      return items;
    }, 60_000);
    const done = performance.now();
    const ms = (a: number, b: number) => Math.round(b - a);
    // A figure to watch, not to assert: creates and binds share one apiserver, etcd and CPU here.
    console.log(
      `burst: 1000 pods on ${NODES} nodes — creates took ${ms(start, created)} ms; all bound ${ms(start, done)} ms after the first ` +
        `create (${ms(created, done)} ms after the last) → ${Math.round(1000 / ((done - start) / 1000))} binds/s end to end; ` +
        `scheduler stats ${JSON.stringify(scheduler.stats())}`,
    );

    const perNode = new Map<string, number>();
    for (const p of placed) perNode.set(p.spec!.nodeName, (perNode.get(p.spec!.nodeName) ?? 0) + 1);
    // Never on tainted or not-Ready nodes; evenly over the 94 others.
    for (const n of [...BATCH, NOT_READY]) expect(perNode.has(n)).toBe(false);
    expect(perNode.size).toBe(94);
    const counts = [...perNode.values()];
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);

    const one = placed.find((p) => p.metadata!.name === "web-7")!;
    expect(one.status!.conditions.find((c) => c.type === "PodScheduled")?.status).toBe("True");
    const scheduled = await eventually(async () => {
      const evs = await podEvents(ns, "web-7", "Scheduled");
      expect(evs).toHaveLength(1);
      return evs[0];
    });
    expect(scheduled.message).toBe(`Successfully assigned burst/web-7 to ${one.spec!.nodeName}`);
    expect(scheduled.source?.component).toBe("default-scheduler");
  });

  it("respects nodeSelector, required node affinity (In, NotIn, matchFields) and taints", async () => {
    const ns = await namespace("placement");
    const zoneIn = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: "zone", operator: "In", values: ["z2"] }] }] } } };
    const notIn = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: "zone", operator: "NotIn", values: ["z0", "z1", "z2"] }, { key: "pool", operator: "Exists", values: [] }] }],
        },
      },
    };
    const byName = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: "metadata.name", operator: "In", values: ["node-011", "node-012"] }] }] } } };
    const specs: [string, PodOpts, (node: string) => boolean][] = [
      ["pinned", { nodeSelector: { "kubernetes.io/hostname": "node-007" } }, (n) => n === "node-007"],
      ...Array.from({ length: 10 }, (_, i): [string, PodOpts, (n: string) => boolean] => [`z2-${i}`, { affinity: zoneIn }, (n) => Number(n.slice(5)) % 4 === 2]),
      ...Array.from({ length: 10 }, (_, i): [string, PodOpts, (n: string) => boolean] => [`z3-${i}`, { affinity: notIn }, (n) => Number(n.slice(5)) % 4 === 3 && !BATCH.includes(n)]),
      ...Array.from({ length: 4 }, (_, i): [string, PodOpts, (n: string) => boolean] => [`named-${i}`, { affinity: byName }, (n) => n === "node-011" || n === "node-012"]),
      ...Array.from({ length: 4 }, (_, i): [string, PodOpts, (n: string) => boolean] => [`batch-${i}`, { batch: true, cpu: "100m" }, (n) => BATCH.includes(n)]),
    ];
    await inParallel(specs, 16, ([name, opts]) => pods.create(makePod(ns, name, opts)));
    await eventually(async () => {
      for (const [name, , ok] of specs) {
        const node = await boundTo(ns, name);
        expect(node, name).not.toBe("");
        expect(ok(node), `${name} on ${node}`).toBe(true);
      }
    });
    // Free the batch pool again for the next test.
    await inParallel(specs.filter(([n]) => n.startsWith("batch-")), 4, ([name]) => pods.delete(ns, name, { gracePeriodSeconds: 0n }));
  });

  describe("when pods do not fit", () => {
    let ns: string;
    const message =
      "0/100 nodes are available: 94 node(s) didn't match Pod's node affinity/selector, 5 Insufficient cpu, " +
      "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.";

    it("leaves them Pending with PodScheduled=False and a FailedScheduling event counting reasons", async () => {
      ns = await namespace("exhaust");
      // The batch pool has 5 × 2 cpu: ten 1-cpu pods fit, two do not.
      await inParallel(Array.from({ length: 12 }, (_, i) => `job-${i}`), 12, (n) => pods.create(makePod(ns, n, { batch: true, cpu: "1" })));
      const pending = await eventually(async () => {
        const items = await list(ns);
        expect(items.filter((p) => p.spec?.nodeName).length).toBe(10);
        const waiting = items.filter((p) => !p.spec?.nodeName);
        expect(waiting).toHaveLength(2);
        for (const p of waiting) {
          const cond = p.status?.conditions.find((c) => c.type === "PodScheduled");
          expect(cond).toMatchObject({ status: "False", reason: "Unschedulable", message });
          expect(p.status?.phase).toBe("Pending");
        }
        return waiting.map((p) => p.metadata!.name);
      });
      for (const name of pending) {
        const evs = await eventually(async () => {
          const evs = await podEvents(ns, name, "FailedScheduling");
          expect(evs.length).toBeGreaterThan(0);
          return evs;
        });
        expect(evs[0]).toMatchObject({ type: "Warning", message });
      }
    });

    it("schedules a pending pod once a bound pod is deleted", async () => {
      const bound = (await list(ns)).filter((p) => p.spec?.nodeName);
      await pods.delete(ns, bound[0].metadata!.name, { gracePeriodSeconds: 0n });
      await eventually(async () => {
        const items = await list(ns);
        expect(items.filter((p) => p.spec?.nodeName).length).toBe(10);
        expect(items.filter((p) => !p.spec?.nodeName)).toHaveLength(1);
      });
    });

    it("schedules the last one when a node is added", async () => {
      await nodes.create(makeNode(100, { labels: { pool: "batch" }, cpu: "2", taint: true }));
      await eventually(async () => {
        const items = await list(ns);
        expect(items.filter((p) => !p.spec?.nodeName)).toHaveLength(0);
        expect(items.filter((p) => p.spec?.nodeName === "node-100")).toHaveLength(1);
      });
    });

    it("schedules a pending pod when a node update makes it fit (label added)", async () => {
      await pods.create(makePod(ns, "gpu-job", { nodeSelector: { gpu: "true" } }));
      await eventually(async () => {
        const p = await pods.get(ns, "gpu-job");
        expect(p.status?.conditions.find((c) => c.type === "PodScheduled")?.status).toBe("False");
      });
      const n = await nodes.get("", "node-020");
      n.metadata!.labels.gpu = "true";
      await nodes.update(n);
      await eventually(async () => expect(await boundTo(ns, "gpu-job")).toBe("node-020"));
    });
  });

  describe("a pod bound by someone else meanwhile", () => {
    it("is not bound again when the informer shows it bound while it waits", async () => {
      const ns = await namespace("others");
      await pods.create(makePod(ns, "parked", { nodeSelector: { pool: "nowhere" } }));
      await eventually(async () => expect((await podEvents(ns, "parked", "FailedScheduling")).length).toBeGreaterThan(0));
      await createClient(PodService, cp.transport).bind({ namespace: ns, name: "parked", nodeName: "node-030" });
      // Wake every parked pod: the scheduler must not pick this one up again.
      const n = await nodes.get("", "node-031");
      n.metadata!.labels.touched = "yes";
      await nodes.update(n);
      await sleep(1000);
      expect(await boundTo(ns, "parked")).toBe("node-030");
      expect(await podEvents(ns, "parked", "Scheduled")).toHaveLength(0);
    });

    it("is skipped when its bind is refused (FAILED_PRECONDITION), and counts where it really runs", async () => {
      const ns = await namespace("race");
      const before = scheduler.stats().bindConflicts;
      await pods.create(makePod(ns, RACE_POD, { cpu: "100m" }));
      await eventually(() => expect(scheduler.stats().bindConflicts).toBe(before + 1));
      await sleep(500);
      expect(await boundTo(ns, RACE_POD)).toBe(RACE_NODE);
      expect(await podEvents(ns, RACE_POD, "Scheduled")).toHaveLength(0);
      expect(scheduler.stats().cache.assumed).toBe(0);
    });
  });

  describe("the binder the scheduler uses (answer not parsed)", () => {
    const transports = {
      "Skiff's gRPC transport": () => cp.transport,
      "Connect-JSON over HTTP/1.1": () => createConnectTransport({ baseUrl: cp.server.url, httpVersion: "1.1", useBinaryFormat: false, nodeOptions: cp.pki.adminNodeOptions }),
    };
    for (const [name, transport] of Object.entries(transports)) {
      it(`binds over ${name}, and a second bind fails with FAILED_PRECONDITION`, async () => {
        const ns = await namespace(`binder-${name.startsWith("Skiff") ? "grpc" : "json"}`);
        // Another scheduler's pod: ours leaves it alone.
        const pod = makePod(ns, "manual");
        pod.spec!.schedulerName = "someone-else";
        const created = await pods.create(pod);
        const bind = createPodBinder(transport());
        await bind({ namespace: ns, name: "manual", nodeName: "node-020", uid: created.metadata!.uid });
        expect(await boundTo(ns, "manual")).toBe("node-020");
        const again = await bind({ namespace: ns, name: "manual", nodeName: "node-021", uid: "" }).catch((e: unknown) => ConnectError.from(e));
        expect(again).toBeInstanceOf(ConnectError);
        expect((again as ConnectError).code).toBe(Code.FailedPrecondition);
        expect(await boundTo(ns, "manual")).toBe("node-020");
      });
    }
  });
});
