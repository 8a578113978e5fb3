// skiffctl scale, set image and rollout status|history|undo|pause|resume end to end: the real
// CLI as a child process, a real apiserver on a real etcd, and the real Deployment and
// ReplicaSet controllers in-process. The test plays the node agents: pods become Running and
// Ready unless it holds them back (to watch a rollout wait, or miss its deadline).
import { clone, create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeploymentSchema, type Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import { ConditionSchema } from "../../gen/skiff/v1alpha1/meta_pb.js";
import { PodSchema, PodStatusSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ReplicaSet } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import { spawnSkiffctl } from "../../internal/cli/testing.ts";
import { createDeploymentController } from "../../internal/controller/deployment/index.ts";
import { createControllerManager, type ControllerManager } from "../../internal/controller/manager.ts";
import { replicaSetController } from "../../internal/controller/replicaset/replicaset.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

let cp: ControlPlane;
let manager: ControllerManager;
let agent: HollowAgent;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const skiffctl = (...args: string[]) => spawnSkiffctl(cp.server.url, args).done;

async function eventually<T>(fn: () => Promise<T | undefined | false>, what: string, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

interface HollowAgent {
  /** While held, new pods stay not ready; releasing readies every pod waiting. */
  hold(on: boolean): Promise<void>;
  stop(): void;
}

const isReady = (p: Pod) => p.status?.conditions.some((c) => c.type === "Ready" && c.status === "True") ?? false;

function startHollowAgent(): HollowAgent {
  const pods = cp.client<Pod>("Pod");
  const stop = new AbortController();
  let held = false;
  const ready = async (p: Pod) => {
    if (held || p.metadata?.deletionTimestamp || isReady(p)) return;
    const next = clone(PodSchema, p);
    next.metadata!.resourceVersion = ""; // the agent owns pod status: unconditional
    next.status ??= create(PodStatusSchema);
    next.status.phase = "Running";
    next.status.conditions = [create(ConditionSchema, { type: "Ready", status: "True", lastTransitionTime: timestampNow() })];
    await pods.updateStatus(next).catch(() => undefined); // gone meanwhile
  };
  void (async () => {
    while (!stop.signal.aborted) {
      try {
        for await (const ev of pods.watch("default", { signal: stop.signal })) if (ev.type === "ADDED" || ev.type === "MODIFIED") void ready(ev.object);
      } catch {
        await sleep(100);
      }
    }
  })();
  return {
    async hold(on) {
      held = on;
      if (!on) for (const p of (await pods.list("default")).items) await ready(p);
    },
    stop: () => stop.abort(),
  };
}

beforeAll(async () => {
  cp = await startControlPlane();
  agent = startHollowAgent();
  manager = createControllerManager({
    transport: cp.transport,
    log: pino({ level: "silent" }),
    options: {
      leaderElect: false,
      controllers: ["replicaset", "deployment"],
      factories: { replicaset: replicaSetController, deployment: createDeploymentController },
    },
  });
  await manager.start();
  await eventually(async () => manager.isRunning(), "the controllers to run");
});

afterAll(async () => {
  await manager?.stop();
  agent?.stop();
  await cp?.stop();
});

const deployments = () => cp.client<Deployment>("Deployment");
const web = () => deployments().get("default", "web");

function deployment(name: string, replicas: number, image: string, extra: { progressDeadlineSeconds?: number } = {}): Deployment {
  const labels = { app: name };
  return create(DeploymentSchema, {
    metadata: { name, namespace: "default" },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { containers: [{ name: "main", image }, { name: "sidecar", image: "log:1" }] } },
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: "1", maxUnavailable: "0" } },
      ...extra,
    },
  });
}

/** The images of the running (not deleting) pods of app=web. */
async function podImages(): Promise<string[]> {
  const { items } = await cp.client<Pod>("Pod").list("default", { labelSelector: "app=web" });
  return items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.spec!.containers[0].image).sort();
}

const rolledOut = (name: string) => `deployment "${name}" successfully rolled out\n`;

describe("skiffctl workload commands with the real controllers", () => {
  it("waits for a new deployment to roll out", async () => {
    await agent.hold(true);
    await deployments().create(deployment("web", 2, "web:1"));
    const status = spawnSkiffctl(cp.server.url, ["rollout", "status", "deploy/web", "--timeout", "60s"]);
    await status.waitFor(/Waiting for deployment "web" rollout to finish: 0 of 2 updated replicas are available\.\.\.\n/);
    await agent.hold(false);
    const r = await status.done;
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out.endsWith(rolledOut("web"))).toBe(true);
    for (const line of r.out.trimEnd().split("\n").slice(0, -1)) expect(line).toMatch(/^Waiting for deployment (spec update to be observed|"web" rollout to finish: .*)\.\.\.$/);
  });

  it("scales", async () => {
    expect(await skiffctl("scale", "deploy/web", "--replicas", "3")).toEqual({ code: 0, out: "deployment.apps/web scaled\n", err: "" });
    expect(await skiffctl("rollout", "status", "deployment", "web", "--timeout", "60s")).toMatchObject({ code: 0, out: expect.stringMatching(/successfully rolled out\n$/) });
    expect(await podImages()).toEqual(["web:1", "web:1", "web:1"]);
    expect(await skiffctl("scale", "deploy/web", "--replicas", "5", "--current-replicas", "2")).toEqual({ code: 1, out: "", err: "Error: Expected replicas to be 2, was 3\n" });
    const rs = (await cp.client<ReplicaSet>("ReplicaSet").list("default", { labelSelector: "app=web" })).items;
    expect(rs).toHaveLength(1);
    expect(rs[0].metadata!.name).toBe(`web-${rs[0].metadata!.labels["pod-template-hash"]}`);
  });

  it("sets an image and follows the rolling update to the end", async () => {
    await agent.hold(true);
    expect(await skiffctl("set", "image", "deploy/web", "main=web:2")).toEqual({ code: 0, out: "deployment.apps/web image updated\n", err: "" });
    const status = spawnSkiffctl(cp.server.url, ["rollout", "status", "deploy/web"]);
    await status.waitFor(/Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated\.\.\.\n/);
    await agent.hold(false);
    const r = await status.done;
    expect(r).toMatchObject({ code: 0, err: "" });
    expect(r.out.endsWith(rolledOut("web"))).toBe(true);
    expect(await podImages()).toEqual(["web:2", "web:2", "web:2"]);
    expect(await skiffctl("set", "image", "deploy/web", "app=web:3")).toEqual({
      code: 1,
      out: "",
      err: 'Error: unable to find container named "app" in deployment "web"; its containers: main, sidecar\n',
    });
  });

  it("lists the history, with one revision's template", async () => {
    const cause = clone(DeploymentSchema, await web());
    cause.metadata!.annotations["kubernetes.io/change-cause"] = "image web:2";
    await deployments().update(cause);
    await eventually(async () => (await skiffctl("rollout", "history", "deploy/web")).out.includes("image web:2"), "the change-cause on the ReplicaSet");
    expect(await skiffctl("rollout", "history", "deploy/web")).toEqual({ code: 0, err: "", out: "deployment.apps/web\nREVISION   CHANGE-CAUSE\n1          <none>\n2          image web:2\n" });
    const one = await skiffctl("rollout", "history", "deploy/web", "--revision", "1");
    expect(one.out).toMatch(/^deployment\.apps\/web with revision #1\nPod Template:\n {2}Labels: +app=web\n +pod-template-hash=\w+\n {2}Containers:\n {4}main:\n {6}Image: +web:1\n/);
  });

  it("undoes the rollout back to the previous image", async () => {
    expect(await skiffctl("rollout", "undo", "deploy/web")).toEqual({ code: 0, out: "deployment.apps/web rolled back\n", err: "" });
    expect((await web()).spec!.template!.spec!.containers[0].image).toBe("web:1");
    expect(await skiffctl("rollout", "status", "deploy/web", "--timeout", "60s")).toMatchObject({ code: 0, out: expect.stringMatching(/successfully rolled out\n$/) });
    expect(await podImages()).toEqual(["web:1", "web:1", "web:1"]);
    // Revision 1 came back as revision 3; the ReplicaSets are reused, not copied.
    const history = await skiffctl("rollout", "history", "deploy/web");
    expect(history.out).toMatch(/^deployment\.apps\/web\nREVISION +CHANGE-CAUSE\n2 +image web:2\n3 +<none>\n$/);
    expect((await cp.client<ReplicaSet>("ReplicaSet").list("default", { labelSelector: "app=web" })).items).toHaveLength(2);
    expect(await skiffctl("rollout", "undo", "deploy/web", "--to-revision", "3")).toMatchObject({ code: 0, out: "deployment.apps/web skipped rollback (current template already matches revision 3)\n" });
  });

  it("pauses: changes wait until resumed", async () => {
    expect(await skiffctl("rollout", "pause", "deploy/web")).toEqual({ code: 0, out: "deployment.apps/web paused\n", err: "" });
    expect(await skiffctl("rollout", "pause", "deploy/web")).toEqual({ code: 1, out: "", err: 'Error: deployments.apps "web" is already paused\n' });
    expect(await skiffctl("set", "image", "deploy/web", "main=web:3")).toMatchObject({ code: 0, out: "deployment.apps/web image updated\n" });
    await sleep(1000);
    expect(await podImages()).toEqual(["web:1", "web:1", "web:1"]);
    expect((await cp.client<ReplicaSet>("ReplicaSet").list("default", { labelSelector: "app=web" })).items).toHaveLength(2);
    expect(await skiffctl("rollout", "resume", "deploy/web")).toEqual({ code: 0, out: "deployment.apps/web resumed\n", err: "" });
    expect(await skiffctl("rollout", "status", "deploy/web", "--timeout", "60s")).toMatchObject({ code: 0, out: expect.stringMatching(/successfully rolled out\n$/) });
    expect(await podImages()).toEqual(["web:3", "web:3", "web:3"]);
  });

  it("fails when the rollout misses its progress deadline, or the timeout", async () => {
    await agent.hold(true);
    await deployments().create(deployment("stuck", 1, "stuck:1", { progressDeadlineSeconds: 1 }));
    const r = await skiffctl("rollout", "status", "deploy/stuck", "--timeout", "60s");
    expect(r.err).toBe('Error: deployment "stuck" exceeded its progress deadline\n');
    expect(r.code).toBe(1);
    await deployments().create(deployment("slow", 1, "slow:1"));
    const t = await skiffctl("rollout", "status", "deploy/slow", "--timeout", "2s");
    expect(t).toMatchObject({ code: 1, err: 'Error: timed out after 2s waiting for deployment "slow" rollout to finish\n' });
    await agent.hold(false);
    expect(await skiffctl("rollout", "status", "deploy/slow", "--timeout", "60s")).toMatchObject({ code: 0, out: expect.stringMatching(/successfully rolled out\n$/) });
  });

  it("gets the controllers' events", async () => {
    const r = await skiffctl("get", "events", "--field-selector", "involvedObject.name=web");
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^LAST SEEN +TYPE +REASON +OBJECT +MESSAGE$/);
    // From the 10th scaling of one Deployment within 10 minutes, events are combined as client-go's
    // EventCorrelator does: one "(combined from similar events): …" event whose count rises.
    const scaled = /^\S+ +Normal +ScalingReplicaSet +deployment\/web +(\(combined from similar events\): )?Scaled (up|down) replica set web-\w+ (from \d+ )?to \d+$/;
    expect(lines.slice(1).filter((l) => !scaled.test(l))).toEqual([]);
    expect(lines.length).toBeGreaterThan(3);
  });
});
