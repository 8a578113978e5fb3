// The Deployment controller against an in-process apiserver, with RS status simulated by the test
// (testing.ts): first rollout, rolling updates within their bounds, Recreate, scaling.
import { clone, create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Deployment } from "../../../gen/skiff/v1alpha1/deployment_pb.js";
import { PodSchema, type Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { ReplicaSetSchema } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import { createResourceClient } from "../../client/resource-client.ts";
import { createApiTransport } from "../../client/transport.ts";
import { available, deployment, eventually, progressing, startHarness, type Harness } from "./testing.ts";
import {
  controllerRef,
  DESIRED_REPLICAS_ANNOTATION,
  fenceposts,
  MAX_REPLICAS_ANNOTATION,
  POD_TEMPLATE_HASH_LABEL,
  REVISION_ANNOTATION,
  specReplicas,
  templateHash,
} from "./util.ts";
import { adminCredentials } from "../../pki/testing.ts";

let h: Harness;
const transport = (h: Harness) => createApiTransport(h.server.url, adminCredentials());
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.stop();
});

/** Ticks the simulated pods until the Deployment is complete; returns the number of ticks. */
async function runToCompletion(name: string, becomeReady?: Parameters<Harness["tick"]>[0], maxTicks = 60): Promise<number> {
  for (let i = 0; i < maxTicks; i++) {
    await h.settle();
    const wrote = await h.tick(becomeReady);
    const d = await h.get(name);
    const s = d.status;
    const done =
      !wrote && s && s.observedGeneration === d.metadata!.generation && s.updatedReplicas === specReplicas(d) &&
      s.replicas === specReplicas(d) && s.availableReplicas === specReplicas(d) && progressing(d) === "True/NewReplicaSetAvailable";
    if (done) return i;
  }
  throw new Error(`deployment ${name} did not complete in ${maxTicks} ticks: ${JSON.stringify((await h.get(name)).status)}`);
}

describe("first rollout", () => {
  it("creates an owned, hashed RS with revision 1 and reports status and conditions", async () => {
    const created = await h.deployments.create(deployment("web", { replicas: 3 }));
    const hash = templateHash(created.spec!.template);
    const rs = await eventually(() => {
      const [rs] = h.owned("web");
      expect(rs).toBeDefined();
      return rs;
    });
    expect(rs.metadata!.name).toBe(`web-${hash}`);
    expect(controllerRef(rs)).toMatchObject({ kind: "Deployment", name: "web", uid: created.metadata!.uid, controller: true });
    expect(rs.metadata!.labels).toEqual({ app: "web", [POD_TEMPLATE_HASH_LABEL]: hash });
    expect(rs.spec!.selector!.matchLabels).toEqual({ app: "web", [POD_TEMPLATE_HASH_LABEL]: hash });
    expect(rs.spec!.template!.metadata!.labels[POD_TEMPLATE_HASH_LABEL]).toBe(hash);
    expect(rs.spec!.replicas).toBe(3);
    expect(rs.metadata!.annotations).toMatchObject({ [REVISION_ANNOTATION]: "1", [DESIRED_REPLICAS_ANNOTATION]: "3", [MAX_REPLICAS_ANNOTATION]: "4" });

    await eventually(async () => {
      const d = await h.get("web");
      expect(d.metadata!.annotations[REVISION_ANNOTATION]).toBe("1");
      expect(progressing(d)).toBe("True/NewReplicaSetCreated");
      expect(available(d)).toBe("False/MinimumReplicasUnavailable");
    });
    expect(await h.eventMessages()).toContain(`ScalingReplicaSet: Scaled up replica set web-${hash} to 3`);

    await runToCompletion("web");
    const d = await h.get("web");
    expect(d.status).toMatchObject({ observedGeneration: 1n, replicas: 3, updatedReplicas: 3, readyReplicas: 3, availableReplicas: 3, unavailableReplicas: 0 });
    expect(available(d)).toBe("True/MinimumReplicasAvailable");
    expect(h.owned("web")).toHaveLength(1);
  });
});

describe("rolling update", () => {
  const cases = [
    { replicas: 4, maxSurge: "1", maxUnavailable: "1" },
    { replicas: 5, maxSurge: "0", maxUnavailable: "2" },
    { replicas: 3, maxSurge: "2", maxUnavailable: "0" },
    { replicas: 10, maxSurge: "25%", maxUnavailable: "25%" },
    { replicas: 3, maxSurge: "10%", maxUnavailable: "10%" },
  ];
  for (const c of cases) {
    it(`replicas ${c.replicas}, maxSurge ${c.maxSurge}, maxUnavailable ${c.maxUnavailable}: stays within bounds at every step`, async () => {
      await h.deployments.create(deployment("web", { ...c, image: "skiff.local/web:v1" }));
      await runToCompletion("web");
      const v1 = h.owned("web")[0];
      const d1 = await h.get("web");
      const { maxSurge, maxUnavailable } = fenceposts(d1);

      // From here on, check every state of the RSes the API ever shows us.
      const violations: string[] = [];
      let steps = 0;
      let maxTotal = 0;
      let minAvailable = Infinity;
      h.onChange(() => {
        const rss = h.owned("web");
        const total = rss.reduce((n, rs) => n + specReplicas(rs), 0);
        // Pods that are there and available: an RS scaled below its available count loses them.
        const avail = rss.reduce((n, rs) => n + Math.min(rs.status?.availableReplicas ?? 0, specReplicas(rs)), 0);
        steps++;
        maxTotal = Math.max(maxTotal, total);
        minAvailable = Math.min(minAvailable, avail);
        if (total > c.replicas + maxSurge) violations.push(`step ${steps}: ${total} pods > ${c.replicas} + ${maxSurge}`);
        if (avail < c.replicas - maxUnavailable) violations.push(`step ${steps}: ${avail} available < ${c.replicas} - ${maxUnavailable}`);
      });
      await h.edit("web", (d) => (d.spec!.template!.spec!.containers[0].image = "skiff.local/web:v2"));
      // One pod per RS becomes available per tick: a slow rollout with many steps.
      await runToCompletion("web", () => 1, 200);

      expect(violations).toEqual([]);
      expect(steps).toBeGreaterThan(3);
      if (maxSurge > 0) expect(maxTotal).toBe(c.replicas + maxSurge); // the surge was used
      if (maxUnavailable > 0) expect(minAvailable).toBeLessThan(c.replicas);
      const rss = h.owned("web");
      expect(rss).toHaveLength(2);
      expect(rss[0].metadata!.uid).toBe(v1.metadata!.uid);
      expect(specReplicas(rss[0])).toBe(0);
      expect(specReplicas(rss[1])).toBe(c.replicas);
      expect(rss[1].spec!.template!.spec!.containers[0].image).toBe("skiff.local/web:v2");
      expect(rss[1].metadata!.annotations[REVISION_ANNOTATION]).toBe("2");
      const d = await h.get("web");
      expect(d.metadata!.annotations[REVISION_ANNOTATION]).toBe("2");
      expect(d.status).toMatchObject({ replicas: c.replicas, updatedReplicas: c.replicas, availableReplicas: c.replicas, observedGeneration: 2n });
      const msgs = await h.eventMessages();
      expect(msgs.some((m) => m.startsWith(`ScalingReplicaSet: Scaled down replica set ${v1.metadata!.name} to `))).toBe(true);
    });
  }

  it("scales proportionally when replicas change in the middle of a rollout", async () => {
    await h.deployments.create(deployment("web", { replicas: 10, maxSurge: "3", maxUnavailable: "2" }));
    await runToCompletion("web");
    await h.edit("web", (d) => (d.spec!.template!.spec!.containers[0].image = "skiff.local/web:v2"));
    // New pods never become ready: the rollout stops at old 8, new 5 (10 + 3 surge).
    for (let i = 0; i < 4; i++) {
      await h.settle();
      await h.tick((rs) => (rs.spec!.template!.spec!.containers[0].image.endsWith("v2") ? 0 : 99));
    }
    await h.settle();
    expect(h.owned("web").map(specReplicas)).toEqual([8, 5]);
    await h.edit("web", (d) => (d.spec!.replicas = 20));
    // 20 + 3 surge = 23 pods, split 8:5 → 14.15 + 8.85 → 14 + 9 (largest remainder).
    await eventually(() => expect(h.owned("web").map(specReplicas)).toEqual([14, 9]));
    const rss = h.owned("web");
    expect(rss.every((rs) => rs.metadata!.annotations[DESIRED_REPLICAS_ANNOTATION] === "20")).toBe(true);
    expect(rss.every((rs) => rs.metadata!.annotations[MAX_REPLICAS_ANNOTATION] === "23")).toBe(true);
    await runToCompletion("web", () => 99);
    expect(h.owned("web").map(specReplicas)).toEqual([0, 20]);
  });

  it("scales the only RS when not rolling", async () => {
    await h.deployments.create(deployment("web", { replicas: 2 }));
    await runToCompletion("web");
    await h.edit("web", (d) => (d.spec!.replicas = 5));
    await eventually(() => expect(h.owned("web").map(specReplicas)).toEqual([5]));
    expect(h.owned("web")[0].metadata!.annotations[DESIRED_REPLICAS_ANNOTATION]).toBe("5");
    await runToCompletion("web");
    await h.edit("web", (d) => (d.spec!.replicas = 1));
    await eventually(() => expect(h.owned("web").map(specReplicas)).toEqual([1]));
    const msgs = await h.eventMessages();
    const name = h.owned("web")[0].metadata!.name;
    expect(msgs).toContain(`ScalingReplicaSet: Scaled up replica set ${name} to 5`);
    expect(msgs).toContain(`ScalingReplicaSet: Scaled down replica set ${name} to 1`);
  });
});

describe("Recreate", () => {
  it("scales every old RS to 0, waits for their pods to be gone, then scales the new one up", async () => {
    await h.deployments.create(deployment("web", { replicas: 3, strategy: "Recreate" }));
    await runToCompletion("web");
    const [v1] = h.owned("web");
    await h.edit("web", (d) => (d.spec!.template!.spec!.containers[0].image = "skiff.local/web:v2"));
    await eventually(() => expect(specReplicas(h.owned("web")[0])).toBe(0));
    await h.settle();
    // The old RS's pods are still there (its status says 3): no new RS yet.
    expect(h.owned("web")).toHaveLength(1);
    // A terminating pod of the old RS is still there though the RS's status says none are.
    const pods = createResourceClient<Pod>(transport(h), "Pod");
    await pods.create(
      create(PodSchema, {
        metadata: {
          name: "web-old-pod",
          namespace: "default",
          labels: { app: "web" },
          ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: v1.metadata!.name, uid: v1.metadata!.uid, controller: true }],
        },
        spec: { containers: [{ name: "main", image: "skiff.local/web:v1" }] },
      }),
    );
    await h.setStatus(v1, 0, 0);
    await h.settle();
    expect(h.owned("web")).toHaveLength(1);
    await pods.delete("default", "web-old-pod");
    const v2 = await eventually(() => {
      const rss = h.owned("web");
      expect(rss).toHaveLength(2);
      return rss[1];
    });
    expect(specReplicas(v2)).toBe(3);
    await runToCompletion("web");
    const d: Deployment = await h.get("web");
    expect(d.metadata!.annotations[REVISION_ANNOTATION]).toBe("2");
    expect(available(d)).toBe("True/MinimumReplicasAvailable");
  });
});

describe("adoption", () => {
  it("adopts an orphan RS that matches the selector and releases one that stops matching", async () => {
    const orphan = deployment("web", { replicas: 2 });
    await h.replicaSets.create(
      create(ReplicaSetSchema, {
        metadata: { name: "web-orphan", namespace: "default", labels: { app: "web" } },
        spec: { replicas: 2, selector: { matchLabels: { app: "web" } }, template: orphan.spec!.template },
      }),
    );
    const d = await h.deployments.create(orphan);
    await eventually(() => expect(h.owned("web").map((rs) => rs.metadata!.name)).toEqual(["web-orphan"]));
    // Same template: the adopted RS is the new one, no second RS.
    await runToCompletion("web");
    expect(h.owned("web")).toHaveLength(1);
    expect(h.owned("web")[0].metadata!.annotations[REVISION_ANNOTATION]).toBe("1");

    const rs = clone(ReplicaSetSchema, await h.replicaSets.get("default", "web-orphan"));
    rs.metadata!.labels = { app: "other" };
    await h.replicaSets.update(rs);
    await eventually(async () => {
      const cur = await h.replicaSets.get("default", "web-orphan");
      expect(cur.metadata!.ownerReferences.filter((r) => r.uid === d.metadata!.uid)).toEqual([]);
    });
    // Released, the Deployment makes an RS of its own.
    await eventually(() => expect(h.owned("web")).toHaveLength(1));
    expect(h.owned("web")[0].metadata!.name).not.toBe("web-orphan");
  });
});
