// The pure parts of the Deployment controller: maxSurge/maxUnavailable arithmetic, the template
// hash, the rollout and scaling plans, and the freshness tracker.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ReplicaSetSchema, type ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import { createFreshness } from "./freshness.ts";
import { newRSReplicas, planOldScaleDown, planScale } from "./plan.ts";
import { deployment } from "./testing.ts";
import { fenceposts, POD_TEMPLATE_HASH_LABEL, resolveIntOrPercent, sameTemplate, templateHash } from "./util.ts";

let t = 0;
function rs(name: string, spec: number, available = spec, replicas = spec): ReplicaSet {
  return create(ReplicaSetSchema, {
    metadata: { name, generation: 1n, creationTimestamp: timestampFromMs(1_000_000 + ++t * 1000) },
    spec: { replicas: spec },
    status: { replicas, availableReplicas: available, readyReplicas: available, observedGeneration: 1n },
  });
}
const counts = (scales: { rs: ReplicaSet; replicas: number }[]) => Object.fromEntries(scales.map((s) => [s.rs.metadata!.name, s.replicas]));

describe("maxSurge and maxUnavailable", () => {
  it("resolves numbers and percentages, surge rounding up and unavailability down", () => {
    expect(resolveIntOrPercent("3", 10, true)).toBe(3);
    expect(resolveIntOrPercent("25%", 10, true)).toBe(3);
    expect(resolveIntOrPercent("25%", 10, false)).toBe(2);
    expect(resolveIntOrPercent("100%", 7, false)).toBe(7);
    expect(resolveIntOrPercent("bogus", 7, false)).toBe(0);
  });

  it("gives a rollout room to move when both round to 0, and caps unavailability at replicas", () => {
    expect(fenceposts(deployment("a", { replicas: 10 }))).toEqual({ maxSurge: 3, maxUnavailable: 2 });
    expect(fenceposts(deployment("a", { replicas: 1, maxSurge: "0%", maxUnavailable: "10%" }))).toEqual({ maxSurge: 0, maxUnavailable: 1 });
    expect(fenceposts(deployment("a", { replicas: 2, maxSurge: "1", maxUnavailable: "5" }))).toEqual({ maxSurge: 1, maxUnavailable: 2 });
    expect(fenceposts(deployment("a", { replicas: 2, strategy: "Recreate" }))).toEqual({ maxSurge: 0, maxUnavailable: 0 });
  });
});

describe("templateHash", () => {
  it("is stable, name-safe, ignores the hash label and map order, and changes with the pod", () => {
    const a = deployment("web").spec!.template!;
    const b = deployment("web").spec!.template!;
    b.metadata!.labels = { [POD_TEMPLATE_HASH_LABEL]: "x", zz: "1", app: "web" };
    a.metadata!.labels = { app: "web", zz: "1" };
    const h = templateHash(a);
    expect(h).toMatch(/^[bcdfghjklmnpqrstvwxz2456789]{10}$/);
    expect(templateHash(b)).toBe(h);
    expect(templateHash(a, 1)).not.toBe(h);
    b.spec!.containers[0].image = "other";
    expect(templateHash(b)).not.toBe(h);
  });
});

describe("sameTemplate", () => {
  it("tells templates apart by everything but the hash label, and leaves both untouched", () => {
    const a = deployment("web").spec!.template!;
    const b = deployment("web").spec!.template!;
    a.metadata!.labels = { app: "web", zz: "1" };
    b.metadata!.labels = { [POD_TEMPLATE_HASH_LABEL]: "x", zz: "1", app: "web" };
    expect(sameTemplate(a, b)).toBe(true);
    expect(b.metadata!.labels[POD_TEMPLATE_HASH_LABEL]).toBe("x");
    expect(sameTemplate(a, { ...b, metadata: { ...b.metadata!, labels: { [POD_TEMPLATE_HASH_LABEL]: "x", app: "web" } } })).toBe(false);
    expect(sameTemplate(a, { ...b, metadata: { ...b.metadata!, labels: { ...b.metadata!.labels, extra: "1" } } })).toBe(false);
    expect(sameTemplate(a, { ...b, metadata: { ...b.metadata!, annotations: { note: "1" } } })).toBe(false);
    b.spec!.containers[0].image = "other";
    expect(sameTemplate(a, b)).toBe(false);
    expect(sameTemplate(undefined, undefined)).toBe(true);
    expect(sameTemplate(a, undefined)).toBe(false);
  });
});

describe("rolling update plan", () => {
  const d = deployment("web", { replicas: 4, maxSurge: "1", maxUnavailable: "1" });

  it("scales the new RS up to replicas + surge - total", () => {
    const old = rs("old", 4);
    expect(newRSReplicas(d, [old], undefined)).toBe(1);
    const neu = rs("new", 1, 0);
    expect(newRSReplicas(d, [old, neu], neu)).toBe(1); // 5 pods already
    const old3 = rs("old", 3);
    expect(newRSReplicas(d, [old3, neu], neu)).toBe(2);
    // The old RS was scaled down to 3 but still has its 4th pod: no room until it is gone.
    const old3of4 = rs("old", 3, 3, 4);
    expect(newRSReplicas(d, [old3of4, neu], neu)).toBe(1);
  });

  it("scales old RSes down as far as availability allows, unhealthy pods and oldest first", () => {
    // 4 old available + 1 new unavailable: one old may go (4 - 3 = 1).
    expect(counts(planOldScaleDown(d, [rs("old", 4)], rs("new", 1, 0)))).toEqual({ old: 3 });
    // Nothing may go while the new RS's pods are unavailable and the old ones are at the minimum.
    expect(planOldScaleDown(d, [rs("old", 3)], rs("new", 2, 0))).toEqual([]);
    // Unhealthy old pods go first (from "a", though "b" is older): they cost no availability.
    // Then available ones from the oldest RS, down to the minimum: 4 available, 3 needed.
    const b = rs("b", 3, 3);
    const a = rs("a", 2, 1);
    expect(counts(planOldScaleDown(d, [a, b], rs("new", 1, 0)))).toEqual({ b: 2, a: 1 });
  });

  it("never counts pods of an RS whose scale-down is not carried out yet", () => {
    // "a" was scaled 3 → 2 but its status still says 3 available: only 2 count. 2 + 2 (b) + 1
    // (new) = 5 available against a minimum of 3 allows 2 more to go, not 3.
    const a = rs("a", 2, 3, 3);
    const b = rs("b", 2, 2);
    expect(counts(planOldScaleDown(d, [a, b], rs("new", 1, 1)))).toEqual({ a: 0 });
  });
});

describe("scaling plan", () => {
  it("gives the only RS with pods the new count", () => {
    const d = deployment("web", { replicas: 5 });
    expect(counts(planScale(d, rs("new", 3), [rs("old", 0)]))).toEqual({ new: 5 });
    expect(counts(planScale(d, undefined, [rs("older", 0), rs("old", 0)]))).toEqual({ old: 5 });
  });

  it("spreads a change over the RSes with pods in proportion (largest remainder)", () => {
    const d = deployment("web", { replicas: 20, maxSurge: "3", maxUnavailable: "2" });
    expect(counts(planScale(d, rs("new", 5, 0), [rs("old", 8)]))).toEqual({ old: 14, new: 9 });
    const down = deployment("web", { replicas: 5, maxSurge: "1", maxUnavailable: "1" });
    expect(counts(planScale(down, rs("new", 5, 0), [rs("old", 5)]))).toEqual({ old: 3, new: 3 });
  });

  it("scales old RSes to 0 once the new one is saturated", () => {
    const d = deployment("web", { replicas: 3 });
    expect(counts(planScale(d, rs("new", 3, 3), [rs("old", 1)]))).toEqual({ old: 0 });
  });
});

describe("freshness", () => {
  it("holds a reconcile back until the cache has our writes, and gives up after a while", () => {
    let now = 0;
    const f = createFreshness(1000, () => now);
    const cache = new Map<string, string>();
    const rv = (k: string) => cache.get(k);
    f.wrote("ReplicaSet/default/a", "10", "default/web");
    f.wrote("ReplicaSet/default/b", "", "default/web");
    cache.set("ReplicaSet/default/a", "9");
    cache.set("ReplicaSet/default/b", "5");
    expect(f.settled("default/web", rv)).toBe(false);
    expect(f.settled("default/other", rv)).toBe(true);
    cache.set("ReplicaSet/default/a", "11");
    expect(f.settled("default/web", rv)).toBe(false);
    cache.delete("ReplicaSet/default/b");
    expect(f.settled("default/web", rv)).toBe(true);
    f.wrote("ReplicaSet/default/c", "20", "default/web");
    now = 2000;
    expect(f.settled("default/web", rv)).toBe(true);
  });
});
