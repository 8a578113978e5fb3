import { describe, expect, it } from "vitest";
import { createSchedulerCache } from "./cache.ts";
import { podInfoOf } from "./core/pod-info.ts";
import { makeNode, makePod } from "./core/testing.ts";

const requested = (cache: ReturnType<typeof createSchedulerCache>, node: string) =>
  cache.snapshot().nodes.find((n) => n.name === node)?.requested.cpu ?? 0;

describe("scheduler cache", () => {
  it("counts bound pods, also those seen before their node", () => {
    const cache = createSchedulerCache();
    cache.upsertPod(makePod("a", { node: "n1", cpu: "1", uid: "a" }));
    expect(cache.snapshot().nodes).toEqual([]);
    expect(cache.setNode(makeNode("n1"))).toBe(true);
    expect(requested(cache, "n1")).toBe(1000);
  });

  it("tells node changes that matter from heartbeats", () => {
    const cache = createSchedulerCache();
    const n = makeNode("n1");
    cache.setNode(n);
    const heartbeat = makeNode("n1");
    heartbeat.status!.conditions[0].message = "still here";
    expect(cache.setNode(heartbeat)).toBe(false);
    expect(cache.setNode(makeNode("n1", { labels: { zone: "z" } }))).toBe(true);
    expect(cache.setNode(makeNode("n1", { labels: { zone: "z" }, ready: "False" }))).toBe(true);
  });

  it("frees a pod's resources when it turns Succeeded/Failed or is deleted", () => {
    const cache = createSchedulerCache();
    cache.setNode(makeNode("n1"));
    cache.upsertPod(makePod("a", { node: "n1", cpu: "1", uid: "a" }));
    expect(cache.upsertPod(makePod("a", { node: "n1", cpu: "1", uid: "a", phase: "Succeeded" }))).toBe(true);
    expect(requested(cache, "n1")).toBe(0);
    cache.upsertPod(makePod("b", { node: "n1", cpu: "1", uid: "b" }));
    expect(cache.removePod("b")).toBe(true);
    expect(requested(cache, "n1")).toBe(0);
  });

  it("counts an assumed pod at once; the informer's copy confirms it", () => {
    const cache = createSchedulerCache();
    cache.setNode(makeNode("n1"));
    const pending = makePod("a", { cpu: "1", uid: "a" });
    cache.assume(podInfoOf(pending), "n1");
    expect(cache.isAssumed("a")).toBe(true);
    expect(requested(cache, "n1")).toBe(1000);
    cache.finishBinding("a");
    expect(cache.upsertPod(makePod("a", { node: "n1", cpu: "1", uid: "a" }))).toBe(false);
    expect(cache.isAssumed("a")).toBe(false);
    expect(cache.forget("a")).toBe(false); // confirmed: no longer ours to forget
    expect(requested(cache, "n1")).toBe(1000);
  });

  it("confirms an assumed pod from its bound copy (same generation) without counting it again, and it no longer expires", () => {
    let ms = 0;
    const cache = createSchedulerCache({ assumeTtlMs: 1000, now: () => ms });
    cache.setNode(makeNode("n1"));
    const version = (o: Parameters<typeof makePod>[1]) => {
      const p = makePod("a", { uid: "a", cpu: "1", labels: { app: "web" }, owner: "rs1", ...o });
      p.metadata!.generation = 1n;
      return p;
    };
    cache.assume(podInfoOf(version({})), "n1");
    cache.finishBinding("a");
    expect(cache.upsertPod(version({ node: "n1" }))).toBe(false);
    expect(cache.isAssumed("a")).toBe(false);
    expect(cache.stats()).toEqual({ nodes: 1, pods: 1, assumed: 0 });
    expect(requested(cache, "n1")).toBe(1000);
    expect([...cache.snapshot().workloads!.keys()]).toEqual(["owner:uid-rs-rs1"]);
    ms += 5000;
    expect(cache.expireAssumed()).toBe(0);
    expect(requested(cache, "n1")).toBe(1000);
    // Relabelled before the bound copy arrived: counted under the new labels, and reported.
    cache.assume(podInfoOf(version({})), "n1");
    expect(cache.upsertPod(version({ node: "n1", labels: { app: "api" } }))).toBe(false);
    expect([...cache.snapshot().nodes[0].podLabels.keys()]).toEqual(["default/app=api"]);
    expect(cache.isAssumed("a")).toBe(false);
  });

  it("moves the pod when someone else bound it elsewhere, and forgets a failed bind", () => {
    const cache = createSchedulerCache();
    cache.setNode(makeNode("n1"));
    cache.setNode(makeNode("n2"));
    cache.assume(podInfoOf(makePod("a", { cpu: "1", uid: "a" })), "n1");
    expect(cache.upsertPod(makePod("a", { node: "n2", cpu: "1", uid: "a" }))).toBe(true);
    expect([requested(cache, "n1"), requested(cache, "n2")]).toEqual([0, 1000]);
    cache.assume(podInfoOf(makePod("b", { cpu: "1", uid: "b" })), "n1");
    expect(cache.forget("b")).toBe(true);
    expect(requested(cache, "n1")).toBe(0);
  });

  it("expires an assumed pod the informer never confirms, only after its bind finished", () => {
    let t = 0;
    const cache = createSchedulerCache({ assumeTtlMs: 100, now: () => t });
    cache.setNode(makeNode("n1"));
    cache.assume(podInfoOf(makePod("a", { cpu: "1", uid: "a" })), "n1");
    t = 1000;
    expect(cache.expireAssumed()).toBe(0); // still binding
    cache.finishBinding("a");
    t = 1050;
    expect(cache.expireAssumed()).toBe(0);
    t = 1200;
    expect(cache.expireAssumed()).toBe(1);
    expect(requested(cache, "n1")).toBe(0);
  });

  it("keeps a removed node's pods until they go, and drops empty entries", () => {
    const cache = createSchedulerCache();
    cache.setNode(makeNode("n1"));
    cache.upsertPod(makePod("a", { node: "n1", uid: "a" }));
    cache.removeNode("n1");
    expect(cache.snapshot().nodes).toEqual([]);
    expect(cache.stats()).toEqual({ nodes: 1, pods: 1, assumed: 0 });
    cache.removePod("a");
    expect(cache.stats()).toEqual({ nodes: 0, pods: 0, assumed: 0 });
  });

  it("keeps counting a pod through status writes, and re-counts it when its spec, labels or owner change", () => {
    const cache = createSchedulerCache();
    cache.setNode(makeNode("n1"));
    const stored = (o: Parameters<typeof makePod>[1], generation: bigint) => {
      const p = makePod("a", { node: "n1", uid: "a", ...o });
      p.metadata!.generation = generation;
      return p;
    };
    cache.upsertPod(stored({ cpu: "1", labels: { app: "web" }, owner: "rs1" }, 1n));
    // A status write: same generation, labels and owner.
    const running = stored({ cpu: "1", labels: { app: "web" }, owner: "rs1" }, 1n);
    running.status!.podIp = "10.0.0.5";
    expect(cache.upsertPod(running)).toBe(false);
    expect(requested(cache, "n1")).toBe(1000);
    // A resize bumps the generation: the new requests count.
    expect(cache.upsertPod(stored({ cpu: "2", labels: { app: "web" }, owner: "rs1" }, 2n))).toBe(false);
    expect(requested(cache, "n1")).toBe(2000);
    // New labels may let a pod waiting on affinity fit: reported, and counted under the new labels.
    expect(cache.upsertPod(stored({ cpu: "2", labels: { app: "api" }, owner: "rs1" }, 2n))).toBe(true);
    const node = () => cache.snapshot().nodes[0];
    expect([...node().podLabels.keys()]).toEqual(["default/app=api"]);
    // Adopted by another controller: counted under its workload.
    cache.upsertPod(stored({ cpu: "2", labels: { app: "api" }, owner: "rs2" }, 2n));
    expect([...cache.snapshot().workloads!.keys()]).toEqual(["owner:uid-rs-rs2"]);
  });

  it("counts pods with required anti-affinity so that decisions skip the check when there are none", () => {
    const cache = createSchedulerCache();
    cache.setNode(makeNode("n1"));
    cache.upsertPod(makePod("plain", { node: "n1", uid: "plain" }));
    expect(cache.snapshot().podsWithRequiredAntiAffinity).toBe(0);
    const anti = { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: "db" } }, topologyKey: "kubernetes.io/hostname" }] } };
    cache.assume(podInfoOf(makePod("db", { uid: "db", labels: { app: "db" }, affinity: anti })), "n1");
    expect(cache.snapshot().podsWithRequiredAntiAffinity).toBe(1);
    cache.upsertPod(makePod("db", { node: "n1", uid: "db", labels: { app: "db" }, affinity: anti }));
    expect(cache.snapshot().podsWithRequiredAntiAffinity).toBe(1);
    cache.removePod("db");
    expect(cache.snapshot().podsWithRequiredAntiAffinity).toBe(0);
  });
});
