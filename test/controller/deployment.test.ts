// The Deployment controller end to end: etcd, an apiserver, and the controller-manager running
// the deployment and replicaset controllers. The test plays a hollow node agent: every pod that
// appears is reported Running and Ready a moment later. An independent pod informer audits every
// pod event of a rolling update: the Deployment's ready pods never drop below
// replicas - maxUnavailable, and in the end only the new ReplicaSet has pods.
import { clone, create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeploymentSchema, type Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import { ConditionSchema } from "../../gen/skiff/v1alpha1/meta_pb.js";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ReplicaSet } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import { createInformer, type Informer } from "../../internal/client/informer.ts";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { createDeploymentController } from "../../internal/controller/deployment/index.ts";
import { POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, stripHash } from "../../internal/controller/deployment/util.ts";
import { createControllerManager, type ControllerManager } from "../../internal/controller/manager.ts";
import { isPodActive, isPodReady } from "../../internal/controller/replicaset/pods.ts";
import { replicaSetController } from "../../internal/controller/replicaset/replicaset.ts";
import { quietLog, sleep, waitFor } from "../../internal/controller/replicaset/testing.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

let cp: ControlPlane;
let manager: ControllerManager;
let pods: Informer<Pod>;
const agent = new AbortController();

const deployments = () => cp.client<Deployment>("Deployment");
const rss = () => cp.client<ReplicaSet>("ReplicaSet");

/** The hollow agent: a pod that is not ready becomes Running and Ready after 50-250 ms. */
function startHollowAgent(): void {
  const podClient = createResourceClient<Pod>(cp.transport, "Pod");
  const pending = new Set<string>();
  const makeReady = async (name: string) => {
    await sleep(50 + Math.random() * 200);
    pending.delete(name);
    if (agent.signal.aborted) return;
    try {
      const cur = await podClient.get("default", name);
      if (cur.metadata?.deletionTimestamp || isPodReady(cur)) return;
      const next = clone(PodSchema, cur);
      next.status!.phase = "Running";
      next.status!.conditions = [create(ConditionSchema, { type: "Ready", status: "True", lastTransitionTime: timestampNow() })];
      await podClient.updateStatus(next);
    } catch (err) {
      const code = ConnectError.from(err).code;
      if (code !== Code.NotFound && code !== Code.Aborted) throw err;
    }
  };
  const see = (p: Pod) => {
    const name = p.metadata!.name;
    if (isPodReady(p) || !isPodActive(p) || pending.has(name)) return;
    pending.add(name);
    void makeReady(name);
  };
  pods.onAdd(see);
  pods.onUpdate((_old, p) => see(p));
}

beforeAll(async () => {
  cp = await startControlPlane();
  pods = createInformer<Pod>(createResourceClient<Pod>(cp.transport, "Pod"), { namespace: "default" });
  pods.start(agent.signal);
  await pods.waitForSync();
  startHollowAgent();
  manager = createControllerManager({
    transport: cp.transport,
    log: quietLog(),
    options: {
      leaderElect: false,
      controllers: ["replicaset", "deployment"],
      factories: { replicaset: replicaSetController, deployment: createDeploymentController },
    },
  });
  await manager.start();
  await waitFor(() => manager.isRunning(), "controllers running");
});

afterAll(async () => {
  await manager?.stop();
  agent.abort();
  await pods?.stop();
  await cp?.stop();
});

function web(replicas: number, image: string): Deployment {
  const labels = { app: "web" };
  return create(DeploymentSchema, {
    metadata: { name: "web", namespace: "default" },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { containers: [{ name: "main", image }] } },
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: "1", maxUnavailable: "1" } },
    },
  });
}

const webPods = () => pods.list().filter((p) => p.metadata?.labels.app === "web" && isPodActive(p));
const readyWebPods = () => webPods().filter(isPodReady);

async function edit(fn: (d: Deployment) => void): Promise<void> {
  for (;;) {
    const d = clone(DeploymentSchema, await deployments().get("default", "web"));
    fn(d);
    try {
      await deployments().update(d);
      return;
    } catch (err) {
      if (ConnectError.from(err).code !== Code.Aborted) throw err;
    }
  }
}

/** The rollout is done: status of the current generation, every pod updated and available. */
async function rolledOut(replicas: number): Promise<Deployment> {
  return waitFor(
    async () => {
      const d = await deployments().get("default", "web");
      const s = d.status;
      const progressing = s?.conditions.find((c) => c.type === "Progressing");
      const done =
        s?.observedGeneration === d.metadata!.generation && s.replicas === replicas && s.updatedReplicas === replicas &&
        s.availableReplicas === replicas && progressing?.reason === "NewReplicaSetAvailable";
      return done && webPods().length === replicas ? d : undefined;
    },
    "the rollout to complete",
    60_000,
  );
}

/** Watches every pod event until stopped; reports the fewest ready pods seen and pod counts. */
function auditReadiness(): { stop(): { minReady: number; maxPods: number; events: number } } {
  let minReady = Infinity;
  let maxPods = 0;
  let events = 0;
  const check = () => {
    events++;
    minReady = Math.min(minReady, readyWebPods().length);
    maxPods = Math.max(maxPods, webPods().length);
  };
  const offs = [pods.onAdd(check), pods.onUpdate(check), pods.onDelete(check)];
  return {
    stop() {
      for (const off of offs) off();
      return { minReady, maxPods, events };
    },
  };
}

describe("Deployment controller on etcd, with the ReplicaSet controller", () => {
  const replicas = 4;
  const maxUnavailable = 1;

  it("rolls out a new Deployment", async () => {
    await deployments().create(web(replicas, "skiff.local/web:v1"));
    const d = await rolledOut(replicas);
    expect(d.metadata!.annotations[REVISION_ANNOTATION]).toBe("1");
    expect(readyWebPods()).toHaveLength(replicas);
  });

  it("rolls a template change without ever dropping below replicas - maxUnavailable ready pods", async () => {
    const [v1] = (await rss().list("default")).items;
    const audit = auditReadiness();
    await edit((d) => (d.spec!.template!.spec!.containers[0].image = "skiff.local/web:v2"));
    const d = await rolledOut(replicas);
    await sleep(300); // anything late would show up in the audit
    const seen = audit.stop();

    expect(seen.events).toBeGreaterThan(replicas * 2);
    expect(seen.minReady).toBeGreaterThanOrEqual(replicas - maxUnavailable);
    expect(d.metadata!.annotations[REVISION_ANNOTATION]).toBe("2");

    const all = (await rss().list("default")).items;
    expect(all).toHaveLength(2);
    const old = all.find((rs) => rs.metadata!.uid === v1.metadata!.uid)!;
    const neu = all.find((rs) => rs.metadata!.uid !== v1.metadata!.uid)!;
    expect(old.spec!.replicas).toBe(0);
    expect(old.status!.replicas).toBe(0);
    expect(neu.spec!.replicas).toBe(replicas);
    expect(neu.status).toMatchObject({ replicas, readyReplicas: replicas, availableReplicas: replicas });
    // Every pod is the new template's, told apart by the hash label.
    const hash = neu.metadata!.labels[POD_TEMPLATE_HASH_LABEL];
    expect(webPods().map((p) => p.metadata!.labels[POD_TEMPLATE_HASH_LABEL])).toEqual(Array(replicas).fill(hash));
    expect(webPods().every((p) => p.spec!.containers[0].image === "skiff.local/web:v2")).toBe(true);
  });

  it("undoes the rollout by scaling the old ReplicaSet back up, within the same bounds", async () => {
    const before = (await rss().list("default")).items;
    const v1 = before.find((rs) => rs.metadata!.annotations[REVISION_ANNOTATION] === "1")!;
    const audit = auditReadiness();
    await edit((d) => (d.spec!.template = stripHash(v1.spec!.template)));
    const d = await rolledOut(replicas);
    await sleep(300);
    const seen = audit.stop();
    expect(seen.minReady).toBeGreaterThanOrEqual(replicas - maxUnavailable);
    expect(d.metadata!.annotations[REVISION_ANNOTATION]).toBe("3");
    const after = (await rss().list("default")).items;
    expect(after.map((rs) => rs.metadata!.uid).sort()).toEqual(before.map((rs) => rs.metadata!.uid).sort());
    const again = after.find((rs) => rs.metadata!.uid === v1.metadata!.uid)!;
    expect(again.spec!.replicas).toBe(replicas);
    expect(again.metadata!.annotations[REVISION_ANNOTATION]).toBe("3");
    expect(webPods().every((p) => p.spec!.containers[0].image === "skiff.local/web:v1")).toBe(true);
  });
});
