// The Deployment and ReplicaSet controllers together, with every watch they make lagging (each
// message held back a random few ms), against an in-process apiserver. A hollow kubelet makes
// each new pod Running and Ready a moment later and confirms graceful deletions a moment after
// they start, as an agent does. The test counts serving pods (Running, Ready, not being deleted)
// at every pod event, as test/e2e/web-app.test.ts does, through scaling, a rollout and an undo.
import { clone, create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, expect, it } from "vitest";
import { DeploymentSchema, type Deployment } from "../../../gen/skiff/v1alpha1/deployment_pb.js";
import { ConditionSchema } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import { PodSchema, type Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { startApiServer } from "../../apiserver/server.ts";
import { createEventRecorder } from "../../client/events.ts";
import { createSharedInformerFactory } from "../../client/informer.ts";
import { createResourceClient } from "../../client/resource-client.ts";
import { createApiTransport } from "../../client/transport.ts";
import { createMemoryStore } from "../../storage/memory.ts";
import type { ControllerContext } from "../controller.ts";
import { createReplicaSetController } from "../replicaset/replicaset.ts";
import { quietLog, sleep, testTransport, waitFor } from "../replicaset/testing.ts";
import { createDeploymentController } from "./controller.ts";
import { deployment } from "./testing.ts";
import { fenceposts, stripHash } from "./util.ts";
import { adminCredentials, testPki } from "../../pki/testing.ts";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const serving = (p: Pod) => !p.metadata?.deletionTimestamp && p.status?.phase === "Running" && p.status.conditions.some((c) => c.type === "Ready" && c.status === "True");
const ignoreGone = (err: unknown) => {
  if (![Code.NotFound, Code.Aborted].includes(ConnectError.from(err).code)) throw err;
};

for (const replicas of [4, 10]) {
  it(`replicas ${replicas}, 25%/25%, every watch lagging: scale, roll out and undo keep replicas - maxUnavailable pods serving`, async () => {
    const server = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0, heartbeatMs: 200 });
    cleanups.push(() => server.close());
    const base = createApiTransport(server.url, adminCredentials());
    const controllers: [string, (ctx: ControllerContext) => { run(): void; stop(): Promise<void> }][] = [
      ["replicaset", (ctx) => createReplicaSetController(ctx)],
      ["deployment", createDeploymentController],
    ];
    for (const [name, factory] of controllers) {
      const transport = testTransport(createApiTransport(server.url, adminCredentials()));
      for (const kind of ["Pod", "ReplicaSet", "Deployment"]) transport.delay(`skiff.v1alpha1.${kind}Service/Watch`, () => Math.random() * 40);
      const informers = createSharedInformerFactory(transport);
      const ctrl = factory({ transport, informers, recorder: createEventRecorder({ transport: base, component: name }), log: quietLog() });
      informers.start();
      await informers.waitForSync();
      ctrl.run();
      cleanups.push(() => informers.stop(), () => ctrl.stop());
    }
    const pods = createResourceClient<Pod>(base, "Pod");
    const deployments = createResourceClient<Deployment>(base, "Deployment");

    // The hollow kubelet and the audit, on one watch of the pods.
    const stop = new AbortController();
    const current = new Map<string, Pod>();
    const handled = new Set<string>();
    let counting = false;
    let min = Infinity;
    let events = 0;
    const trail: string[] = [];
    const kubelet = async (p: Pod) => {
      const name = p.metadata!.name;
      handled.add(name);
      try {
        if (p.metadata?.deletionTimestamp) {
          await sleep(50 + Math.random() * 200);
          await pods.delete("default", name, { gracePeriodSeconds: 0n, uid: p.metadata.uid });
          return;
        }
        await sleep(20 + Math.random() * 150);
        const cur = await pods.get("default", name);
        if (cur.metadata?.deletionTimestamp || serving(cur)) return;
        const next = clone(PodSchema, cur);
        next.status!.phase = "Running";
        next.status!.conditions = [create(ConditionSchema, { type: "Ready", status: "True", lastTransitionTime: timestampNow() })];
        await pods.updateStatus(next);
      } catch (err) {
        ignoreGone(err);
      } finally {
        handled.delete(name);
      }
    };
    const watching = (async () => {
      for await (const ev of pods.watch("default", { resourceVersion: "", signal: stop.signal })) {
        if (ev.type === "BOOKMARK") continue;
        const p = ev.object;
        const name = p.metadata!.name;
        if (ev.type === "DELETED") current.delete(name);
        else current.set(name, p);
        if (counting) {
          const n = [...current.values()].filter(serving).length;
          events++;
          min = Math.min(min, n);
          trail.push(`${ev.type} ${name} ${serving(p) ? "serving" : p.metadata?.deletionTimestamp ? "deleting" : "not ready"}: ${n} serving`);
        }
        if (ev.type !== "DELETED" && !handled.has(name) && (p.metadata?.deletionTimestamp || !serving(p))) void kubelet(p);
      }
    })().catch((err) => {
      if (!stop.signal.aborted) throw err;
    });
    cleanups.push(() => {
      stop.abort();
      return watching;
    });

    const edit = async (fn: (d: Deployment) => void) => {
      for (;;) {
        const d = clone(DeploymentSchema, await deployments.get("default", "web"));
        fn(d);
        try {
          return await deployments.update(d);
        } catch (err) {
          if (ConnectError.from(err).code !== Code.Aborted) throw err;
        }
      }
    };
    const podsOf = (image: string) => [...current.values()].filter((p) => p.spec!.containers[0].image === image);
    /** The rollout to `image` is complete: status, and exactly `n` pods, all serving that image. */
    const rolledOut = (n: number, image: string) =>
      waitFor(async () => {
        const d = await deployments.get("default", "web");
        const s = d.status;
        const live = [...current.values()].filter((p) => !p.metadata?.deletionTimestamp);
        return s?.observedGeneration === d.metadata!.generation && s.updatedReplicas === n && s.availableReplicas === n && s.replicas === n &&
          live.length === n && live.every(serving) && podsOf(image).filter(serving).length === n;
      }, `${n} pods of ${image} serving`, 30_000);

    // Bound to a node: deletions are graceful (the kubelet confirms them), as in a real cluster.
    const d0 = deployment("web", { replicas, maxSurge: "25%", maxUnavailable: "25%" });
    d0.spec!.template!.spec!.nodeName = "node-1";
    await deployments.create(d0);
    await rolledOut(replicas, "skiff.local/web:v1");
    // Scale up and down just before the rollout, as the e2e test does.
    for (const n of [replicas + 1, 2, replicas]) {
      await edit((d) => (d.spec!.replicas = n));
      await rolledOut(n, "skiff.local/web:v1");
    }
    const { maxUnavailable } = fenceposts(await deployments.get("default", "web"));
    const v1 = stripHash((await deployments.get("default", "web")).spec!.template);

    counting = true;
    min = [...current.values()].filter(serving).length;
    await edit((d) => (d.spec!.template!.spec!.containers[0].image = "skiff.local/web:v2"));
    await rolledOut(replicas, "skiff.local/web:v2");
    await edit((d) => (d.spec!.template = v1));
    await rolledOut(replicas, "skiff.local/web:v1");
    await sleep(200); // anything late shows up in the count

    expect(events).toBeGreaterThan(4 * replicas);
    expect(min, trail.join("\n")).toBeGreaterThanOrEqual(replicas - maxUnavailable);
  }, 90_000);
}
