// rollout status|history|undo|pause|resume against an in-process apiserver. The test plays
// the Deployment controller: it writes the ReplicaSets (revision annotations, hash labels) and
// the Deployment's status the way internal/controller/deployment does.
import { clone, create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeploymentSchema, DeploymentStatusSchema, type Deployment, type DeploymentStatus } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import { ConditionSchema } from "../../gen/skiff/v1alpha1/meta_pb.js";
import { ReplicaSetSchema, type ReplicaSet } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import { historyRows, replicaSetForRevision, rollBack, rolloutState } from "./rollout.ts";
import { startCliTestApi, type CliTestApi } from "./testing.ts";

let api: CliTestApi;
beforeAll(async () => {
  api = await startCliTestApi();
});
afterAll(() => api?.close());

const labels = { app: "web" };
const template = (image: string, hash?: string) => ({
  metadata: { labels: hash ? { ...labels, "pod-template-hash": hash } : labels },
  spec: { containers: [{ name: "main", image }] },
});

function deployment(name: string, image: string): Deployment {
  return create(DeploymentSchema, {
    metadata: { name, namespace: "default" },
    spec: { replicas: 3, selector: { matchLabels: labels }, template: template(image) },
  });
}

function replicaSet(d: Deployment, hash: string, image: string, revision: number, cause?: string): ReplicaSet {
  const annotations: Record<string, string> = { "deployment.kubernetes.io/revision": String(revision) };
  if (cause) annotations["kubernetes.io/change-cause"] = cause;
  return create(ReplicaSetSchema, {
    metadata: {
      name: `${d.metadata!.name}-${hash}`,
      namespace: "default",
      labels: { ...labels, "pod-template-hash": hash },
      annotations,
      ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: d.metadata!.name, uid: d.metadata!.uid, controller: true }],
    },
    spec: { replicas: 0, selector: { matchLabels: { ...labels, "pod-template-hash": hash } }, template: template(image, hash) },
  });
}

const deployments = () => api.client<Deployment>("Deployment");
type StatusInit = Partial<Omit<DeploymentStatus, "$typeName" | "$unknown">>;

async function setStatus(name: string, s: StatusInit, observed = true): Promise<void> {
  const d = await deployments().get("default", name);
  const next = clone(DeploymentSchema, d);
  next.status ??= create(DeploymentStatusSchema);
  Object.assign(next.status, s);
  if (observed) next.status!.observedGeneration = d.metadata!.generation;
  await deployments().updateStatus(next);
}

describe("rollout status, as kubectl words it", () => {
  const d = (spec: number, st: StatusInit, generation = 1n) => {
    const x = deployment("web", "i");
    x.spec!.replicas = spec;
    x.metadata!.generation = generation;
    x.status = create(DeploymentStatusSchema, { observedGeneration: 1n, ...st });
    return x;
  };

  it("walks through the stages of a rollout", () => {
    expect(rolloutState(d(3, {}, 2n)).message).toBe("Waiting for deployment spec update to be observed...\n");
    expect(rolloutState(d(3, { replicas: 4, updatedReplicas: 1 })).message).toBe('Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...\n');
    expect(rolloutState(d(3, { replicas: 4, updatedReplicas: 3 })).message).toBe('Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...\n');
    expect(rolloutState(d(3, { replicas: 3, updatedReplicas: 3, availableReplicas: 1 })).message).toBe('Waiting for deployment "web" rollout to finish: 1 of 3 updated replicas are available...\n');
    expect(rolloutState(d(3, { replicas: 3, updatedReplicas: 3, availableReplicas: 3 }))).toEqual({ message: 'deployment "web" successfully rolled out\n', done: true });
  });

  it("fails past the progress deadline and on another revision", () => {
    const stuck = d(3, { conditions: [create(ConditionSchema, { type: "Progressing", status: "False", reason: "ProgressDeadlineExceeded" })] });
    expect(() => rolloutState(stuck)).toThrow('deployment "web" exceeded its progress deadline');
    const x = d(1, { replicas: 1, updatedReplicas: 1, availableReplicas: 1 });
    x.metadata!.annotations["deployment.kubernetes.io/revision"] = "3";
    expect(rolloutState(x, 3).done).toBe(true);
    expect(() => rolloutState(x, 2)).toThrow("desired revision (2) is different from the running revision (3)");
  });
});

describe("history and rollback, pure", () => {
  const d = deployment("web", "v3");
  const rss = [replicaSet(d, "aaa", "v1", 1), replicaSet(d, "bbb", "v2", 2, "set image v2"), replicaSet(d, "ccc", "v3", 3)];
  it("lists revisions and picks the one to go back to", () => {
    expect(historyRows(rss)).toEqual([[1, "<none>"], [2, "set image v2"], [3, "<none>"]]);
    expect(replicaSetForRevision(d, rss, 0).metadata!.name).toBe("web-bbb");
    expect(replicaSetForRevision(d, rss, 1).metadata!.name).toBe("web-aaa");
    expect(() => replicaSetForRevision(d, rss, 7)).toThrow("unable to find specified revision 7 in history");
    expect(() => replicaSetForRevision(d, rss.slice(0, 1), 0)).toThrow(/no rollout history found/);
  });
  it("copies the template without the hash label, and the change-cause", () => {
    const x = clone(DeploymentSchema, d);
    x.metadata!.annotations = { "deployment.kubernetes.io/revision": "3", "kubernetes.io/change-cause": "v3" };
    expect(rollBack(x, rss[1])).toBe(true);
    expect(x.spec!.template!.metadata!.labels).toEqual(labels);
    expect(x.spec!.template!.spec!.containers[0].image).toBe("v2");
    expect(x.metadata!.annotations).toEqual({ "deployment.kubernetes.io/revision": "3", "kubernetes.io/change-cause": "set image v2" });
    expect(rollBack(x, rss[1])).toBe(false);
  });
});

describe("skiffctl rollout", () => {
  let web: Deployment;
  beforeAll(async () => {
    web = await deployments().create(deployment("web", "v2"));
    const rs = api.client<ReplicaSet>("ReplicaSet");
    await rs.create(replicaSet(web, "aaa", "v1", 1));
    await rs.create(replicaSet(web, "bbb", "v2", 2, "set image v2"));
    // Someone else's ReplicaSet with the same labels is not part of the history.
    await rs.create(create(ReplicaSetSchema, { ...replicaSet(web, "zzz", "v9", 9), metadata: { ...replicaSet(web, "zzz", "v9", 9).metadata!, ownerReferences: [] } }));
  });

  it("prints the history, and one revision's template", async () => {
    const r = await api.run(["rollout", "history", "deploy/web"]);
    expect(r).toEqual({ code: 0, err: "", out: "deployment.apps/web\nREVISION   CHANGE-CAUSE\n1          <none>\n2          set image v2\n" });
    const one = await api.run(["rollout", "history", "deployment", "web", "--revision", "1"]);
    expect(one.out).toMatch(/^deployment.apps\/web with revision #1\nPod Template:\n {2}Labels: +app=web\n +pod-template-hash=aaa\n {2}Containers:\n {4}main:\n {6}Image: +v1\n/);
    expect(await api.run(["rollout", "history", "deploy/web", "--revision", "5"])).toMatchObject({ code: 1, err: 'Error: unable to find revision 5 of deployment "web"\n' });
    expect(await api.run(["rollout", "history", "deploy/nope"])).toMatchObject({ code: 1, err: 'Error: deployment "nope" not found\n' });
  });

  it("pauses and resumes, refusing what is already so", async () => {
    expect(await api.run(["rollout", "pause", "deploy/web"])).toEqual({ code: 0, out: "deployment.apps/web paused\n", err: "" });
    expect((await deployments().get("default", "web")).spec!.paused).toBe(true);
    expect(await api.run(["rollout", "pause", "deploy/web"])).toMatchObject({ code: 1, err: 'Error: deployments.apps "web" is already paused\n' });
    expect(await api.run(["rollout", "undo", "deploy/web"])).toMatchObject({ code: 1, err: expect.stringMatching(/^Error: you cannot roll back a paused deployment; resume it first/) });
    expect(await api.run(["rollout", "resume", "deploy/web"])).toEqual({ code: 0, out: "deployment.apps/web resumed\n", err: "" });
    expect(await api.run(["rollout", "resume", "deploy/web"])).toMatchObject({ code: 1, err: 'Error: deployments.apps "web" is not paused\n' });
  });

  it("rolls back to the previous revision, or a given one", async () => {
    // As the controller would: the Deployment is at revision 2.
    const cur = clone(DeploymentSchema, await deployments().get("default", "web"));
    cur.metadata!.annotations["deployment.kubernetes.io/revision"] = "2";
    await deployments().update(cur);
    expect(await api.run(["rollout", "undo", "deploy/web"])).toEqual({ code: 0, out: "deployment.apps/web rolled back\n", err: "" });
    const back = await deployments().get("default", "web");
    expect(back.spec!.template!.spec!.containers[0].image).toBe("v1");
    expect(back.spec!.template!.metadata!.labels).toEqual(labels);
    expect(back.metadata!.annotations["deployment.kubernetes.io/revision"]).toBe("2");
    expect(await api.run(["rollout", "undo", "deploy/web", "--to-revision", "1"])).toMatchObject({
      code: 0,
      out: "deployment.apps/web skipped rollback (current template already matches revision 1)\n",
    });
    expect(await api.run(["rollout", "undo", "deploy/web", "--to-revision=2"])).toMatchObject({ code: 0, out: "deployment.apps/web rolled back\n" });
    expect((await deployments().get("default", "web")).metadata!.annotations["kubernetes.io/change-cause"]).toBe("set image v2");
    expect(await api.run(["rollout", "undo", "deploy/web", "--to-revision", "7"])).toMatchObject({ code: 1, err: "Error: unable to find specified revision 7 in history\n" });
    await deployments().create(deployment("lonely", "v1"));
    expect(await api.run(["rollout", "undo", "deploy/lonely"])).toMatchObject({ code: 1, err: 'Error: no rollout history found for deployment "lonely": nothing to roll back to\n' });
  });

  it("follows a rollout until it is done", async () => {
    await deployments().create(deployment("roll", "v1"));
    const run = api.start(["rollout", "status", "deploy/roll"]);
    await run.waitFor(/spec update to be observed/);
    await setStatus("roll", { replicas: 1, updatedReplicas: 1 });
    await run.waitFor(/1 out of 3 new replicas have been updated/);
    await setStatus("roll", { replicas: 4, updatedReplicas: 3, availableReplicas: 1 });
    await run.waitFor(/1 old replicas are pending termination/);
    await setStatus("roll", { replicas: 3, updatedReplicas: 3, availableReplicas: 2 });
    await run.waitFor(/2 of 3 updated replicas are available/);
    await setStatus("roll", { replicas: 3, updatedReplicas: 3, availableReplicas: 3 });
    expect(await run.done).toEqual({
      code: 0,
      err: "",
      out: [
        "Waiting for deployment spec update to be observed...",
        'Waiting for deployment "roll" rollout to finish: 1 out of 3 new replicas have been updated...',
        'Waiting for deployment "roll" rollout to finish: 1 old replicas are pending termination...',
        'Waiting for deployment "roll" rollout to finish: 2 of 3 updated replicas are available...',
        'deployment "roll" successfully rolled out',
        "",
      ].join("\n"),
    });
    expect(await api.run(["rollout", "status", "deploy/roll"])).toEqual({ code: 0, err: "", out: 'deployment "roll" successfully rolled out\n' });
  });

  it("gives up on a timeout, a passed deadline, a deletion, and prints once with --watch=false", async () => {
    await deployments().create(deployment("slow", "v1"));
    expect(await api.run(["rollout", "status", "deploy/slow", "--watch=false"])).toEqual({ code: 0, err: "", out: "Waiting for deployment spec update to be observed...\n" });
    const t0 = Date.now();
    expect(await api.run(["rollout", "status", "deploy/slow", "--timeout", "300ms"])).toEqual({
      code: 1,
      out: "Waiting for deployment spec update to be observed...\n",
      err: 'Error: timed out after 300ms waiting for deployment "slow" rollout to finish\n',
    });
    expect(Date.now() - t0).toBeLessThan(5000);
    const stuck = api.start(["rollout", "status", "deploy/slow"]);
    await stuck.waitFor(/observed/);
    const deadline = create(ConditionSchema, { type: "Progressing", status: "False", reason: "ProgressDeadlineExceeded", message: 'ReplicaSet "slow-x" has timed out progressing.' });
    await setStatus("slow", { conditions: [deadline] });
    expect(await stuck.done).toMatchObject({ code: 1, err: 'Error: deployment "slow" exceeded its progress deadline\n' });
    await deployments().create(deployment("gone", "v1"));
    const gone = api.start(["rollout", "status", "deploy/gone"]);
    await gone.waitFor(/observed/);
    await deployments().delete("default", "gone");
    expect(await gone.done).toMatchObject({ code: 1, err: 'Error: deployment "gone" was deleted while waiting for its rollout\n' });
    const interrupted = api.start(["rollout", "status", "deploy/slow", "--timeout", "1h"]);
    await new Promise((r) => setTimeout(r, 200));
    interrupted.interrupt();
    expect((await interrupted.done).code).toBe(1);
  });

  it("explains what it needs", async () => {
    const cases: [string[], string][] = [
      [["rollout"], "Error: say which: skiffctl rollout status|history|undo|pause|resume\n"],
      [["rollout", "frob", "deploy/web"], "Error: unknown command \"frob\"; commands: status, history, undo, pause, resume\n"],
      [["rollout", "status"], "Error: which deployment? skiffctl rollout status deploy/NAME\n"],
      [["rollout", "status", "rs/web"], "Error: rollout status works on deployments, not replicasets (skiffctl rollout status deploy/NAME)\n"],
      [["rollout", "status", "deploy/a", "deploy/b"], "Error: rollout status follows one deployment at a time\n"],
      [["rollout", "status", "deploy/web", "--timeout", "soon"], 'Error: --timeout must be a duration such as 30s, 5m or 1h30m, got "soon"\n'],
      [["rollout", "undo", "deploy/web", "--to-revision", "-1"], 'Error: --to-revision must be a whole number (0 or more), got "-1"\n'],
    ];
    for (const [args, err] of cases) {
      const r = await api.run(args);
      expect(r.err.split("\n")[0] + "\n", args.join(" ")).toBe(err);
      expect(r.code).toBe(1);
    }
  });
});
