// The Deployment controller's revision history: rollback (undo) reusing the old RS, the history
// limit, pause/resume, and the progress deadline. RS status is simulated (testing.ts).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import { deployment, eventually, progressing, sleep, startHarness, type Harness } from "./testing.ts";
import { POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION, specReplicas, stripHash } from "./util.ts";

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.stop();
});

const image = (rs: ReplicaSet) => rs.spec!.template!.spec!.containers[0].image;
const summary = (name: string) => h.owned(name).map((rs) => `${image(rs).split(":")[1]}=${specReplicas(rs)}@${rs.metadata!.annotations[REVISION_ANNOTATION]}`);

async function complete(name: string, becomeReady?: (rs: ReplicaSet) => number): Promise<void> {
  for (let i = 0; i < 60; i++) {
    await h.settle();
    const wrote = await h.tick(becomeReady);
    const d = await h.get(name);
    if (!wrote && d.status?.observedGeneration === d.metadata!.generation && progressing(d) === "True/NewReplicaSetAvailable" && d.status.updatedReplicas === d.status.replicas) return;
  }
  throw new Error(`${name} did not complete: ${summary(name).join(" ")}`);
}

async function rollTo(name: string, tag: string): Promise<void> {
  await h.edit(name, (d) => (d.spec!.template!.spec!.containers[0].image = `skiff.local/web:${tag}`));
  await complete(name);
}

describe("rollback", () => {
  for (const keepLabel of [false, true]) {
    it(`undo (template copied from the old RS${keepLabel ? ", hash label kept" : ""}) scales the old RS back up with a new revision`, async () => {
      await h.deployments.create(deployment("web", { replicas: 3, image: "skiff.local/web:v1" }));
      await complete("web");
      await rollTo("web", "v2");
      expect(summary("web")).toEqual(["v1=0@1", "v2=3@2"]);
      const [v1] = h.owned("web");

      // What `skiffctl rollout undo` does, like kubectl: the old RS's template into the spec.
      await h.edit("web", (d) => {
        d.spec!.template = keepLabel ? v1.spec!.template : stripHash(v1.spec!.template);
      });
      await complete("web");
      expect(summary("web")).toEqual(["v1=3@3", "v2=0@2"]);
      const [again] = h.owned("web");
      expect(again.metadata!.uid).toBe(v1.metadata!.uid);
      expect(again.metadata!.annotations[REVISION_HISTORY_ANNOTATION]).toBe("1");
      expect(again.metadata!.labels[POD_TEMPLATE_HASH_LABEL]).toBe(v1.metadata!.labels[POD_TEMPLATE_HASH_LABEL]);
      const d = await h.get("web");
      expect(d.metadata!.annotations[REVISION_ANNOTATION]).toBe("3");
      expect(d.status).toMatchObject({ replicas: 3, updatedReplicas: 3, availableReplicas: 3 });
      expect(await h.eventMessages()).toContain(`ScalingReplicaSet: Scaled up replica set ${v1.metadata!.name} to 3`);
    });
  }
});

describe("revisionHistoryLimit", () => {
  it("deletes old RSes without pods beyond the limit, lowest revision first", async () => {
    await h.deployments.create(deployment("web", { replicas: 2, revisionHistoryLimit: 1, image: "skiff.local/web:v1" }));
    await complete("web");
    await rollTo("web", "v2");
    expect(summary("web")).toEqual(["v1=0@1", "v2=2@2"]);
    await rollTo("web", "v3");
    await eventually(() => expect(summary("web")).toEqual(["v2=0@2", "v3=2@3"]));
    await h.edit("web", (d) => (d.spec!.revisionHistoryLimit = 0));
    await eventually(() => expect(summary("web")).toEqual(["v3=2@3"]));
  });
});

describe("pause and resume", () => {
  it("makes no rollout progress while paused, but scales the current RS", async () => {
    await h.deployments.create(deployment("web", { replicas: 2, image: "skiff.local/web:v1" }));
    await complete("web");
    await h.edit("web", (d) => (d.spec!.paused = true));
    await eventually(async () => expect(progressing(await h.get("web"))).toBe("Unknown/DeploymentPaused"));
    await h.edit("web", (d) => (d.spec!.template!.spec!.containers[0].image = "skiff.local/web:v2"));
    await h.settle();
    await h.tick();
    await h.settle();
    expect(summary("web")).toEqual(["v1=2@1"]);

    await h.edit("web", (d) => (d.spec!.replicas = 4));
    await eventually(() => expect(summary("web")).toEqual(["v1=4@1"]));
    // Two ticks: the new pods are created, then become available.
    for (let i = 0; i < 2; i++) {
      await h.tick();
      await h.settle();
    }
    const paused = await h.get("web");
    expect(paused.status).toMatchObject({ observedGeneration: paused.metadata!.generation, replicas: 4, availableReplicas: 4 });

    await h.edit("web", (d) => (d.spec!.paused = false));
    await eventually(() => expect(h.owned("web")).toHaveLength(2));
    await complete("web");
    expect(summary("web")).toEqual(["v1=0@1", "v2=4@2"]);
  });

  it("stops a rollout in the middle while paused", async () => {
    await h.deployments.create(deployment("web", { replicas: 4, maxSurge: "1", maxUnavailable: "0", image: "skiff.local/web:v1" }));
    await complete("web");
    await h.edit("web", (d) => (d.spec!.template!.spec!.containers[0].image = "skiff.local/web:v2"));
    await eventually(() => expect(summary("web")).toEqual(["v1=4@1", "v2=1@2"]));
    await h.edit("web", (d) => (d.spec!.paused = true));
    await eventually(async () => expect(progressing(await h.get("web"))).toBe("Unknown/DeploymentPaused"));
    // The new pod becomes available: unpaused, this would scale v1 down.
    for (let i = 0; i < 3; i++) {
      await h.tick();
      await h.settle();
    }
    expect(summary("web")).toEqual(["v1=4@1", "v2=1@2"]);
    await h.edit("web", (d) => (d.spec!.paused = false));
    await complete("web");
    expect(summary("web")).toEqual(["v1=0@1", "v2=4@2"]);
  });
});

describe("progress deadline", () => {
  it("reports ProgressDeadlineExceeded when the new RS makes no progress in time, and recovers", async () => {
    await h.deployments.create(deployment("web", { replicas: 2, progressDeadlineSeconds: 1, image: "skiff.local/web:v1" }));
    await complete("web");
    await h.edit("web", (d) => (d.spec!.template!.spec!.containers[0].image = "skiff.local/web:v2"));
    const never = (rs: ReplicaSet) => (image(rs).endsWith("v2") ? 0 : 99);
    for (let i = 0; i < 3; i++) {
      await h.settle();
      await h.tick(never);
    }
    const started = Date.now();
    // Nothing happens any more: the controller's own requeue must notice the deadline.
    const d = await eventually(async () => {
      const d = await h.get("web");
      expect(progressing(d)).toBe("False/ProgressDeadlineExceeded");
      return d;
    }, 5000);
    expect(Date.now() - started).toBeLessThan(2500);
    expect(d.status!.conditions.find((c) => c.type === "Progressing")!.message).toMatch(/has timed out progressing/);
    await sleep(200);
    await complete("web");
    expect(progressing(await h.get("web"))).toBe("True/NewReplicaSetAvailable");
  });
});
