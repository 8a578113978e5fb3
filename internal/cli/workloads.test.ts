// scale, set image and get events against an in-process apiserver, and the read-modify-write
// they share (a conflict is retried; a failed precondition is not).
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventSchema } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { DeploymentSchema, type Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { ReplicaSetSchema, type ReplicaSet } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import type { ResourceClient } from "../client/resource-client.ts";
import { splitImageArgs } from "./commands/set.ts";
import { updateWithRetry } from "./mutate.ts";
import { startCliTestApi, type CliTestApi } from "./testing.ts";

let api: CliTestApi;
beforeAll(async () => {
  api = await startCliTestApi();
  const labels = { app: "web" };
  await api.client("Deployment").create(
    create(DeploymentSchema, {
      metadata: { name: "web", namespace: "default", labels },
      spec: {
        replicas: 3,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { initContainers: [{ name: "init", image: "busybox:1" }], containers: [{ name: "main", image: "web:1" }, { name: "log", image: "log:1" }] } },
      },
    }),
  );
  await api.client("ReplicaSet").create(
    create(ReplicaSetSchema, {
      metadata: { name: "db", namespace: "default", labels: { app: "db" } },
      spec: { replicas: 1, selector: { matchLabels: { app: "db" } }, template: { metadata: { labels: { app: "db" } }, spec: { containers: [{ name: "db", image: "db:1" }] } } },
    }),
  );
});
afterAll(() => api?.close());

const web = () => api.client<Deployment>("Deployment").get("default", "web");

describe("skiffctl scale", () => {
  it("sets the replicas of deployments and replica sets", async () => {
    expect(await api.run(["scale", "deploy/web", "--replicas", "5"])).toEqual({ code: 0, out: "deployment.apps/web scaled\n", err: "" });
    expect((await web()).spec!.replicas).toBe(5);
    const gen = (await web()).metadata!.generation;
    expect(await api.run(["scale", "deployment", "web", "--replicas=5"])).toMatchObject({ code: 0, out: "deployment.apps/web scaled\n" });
    expect((await web()).metadata!.generation).toBe(gen); // nothing to change, nothing written
    expect(await api.run(["scale", "rs/db", "deploy/web", "--replicas", "0"])).toMatchObject({ code: 0, out: "replicaset.apps/db scaled\ndeployment.apps/web scaled\n" });
    expect(await api.run(["scale", "deploy", "-l", "app=web", "--replicas", "2"])).toMatchObject({ code: 0, out: "deployment.apps/web scaled\n" });
    expect((await web()).spec!.replicas).toBe(2);
  });

  it("checks --current-replicas and --resource-version", async () => {
    expect(await api.run(["scale", "deploy/web", "--replicas", "4", "--current-replicas", "3"])).toEqual({ code: 1, out: "", err: "Error: Expected replicas to be 3, was 2\n" });
    expect(await api.run(["scale", "deploy/web", "--replicas", "4", "--current-replicas", "2"])).toMatchObject({ code: 0, out: "deployment.apps/web scaled\n" });
    const rv = (await web()).metadata!.resourceVersion;
    expect(await api.run(["scale", "deploy/web", "--replicas", "3", "--resource-version", "1"])).toMatchObject({ code: 1, err: `Error: Expected resource version to be 1, was ${rv}\n` });
    expect(await api.run(["scale", "deploy/web", "--replicas", "3", "--resource-version", rv])).toMatchObject({ code: 0 });
  });

  it("explains what it needs", async () => {
    const cases: [string[], string][] = [
      [["scale", "deploy/web"], "Error: --replicas N is required (0 or more): skiffctl scale deploy/NAME --replicas N\n"],
      [["scale", "deploy/web", "--replicas", "-1"], 'Error: --replicas must be a whole number (0 or more), got "-1"\n'],
      [["scale", "deploy/web", "--replicas", "two"], 'Error: --replicas must be a whole number (0 or more), got "two"\n'],
      [["scale", "--replicas", "2"], "Error: which deployment or replicaset? skiffctl scale deploy/NAME --replicas N\n"],
      [["scale", "deploy", "--replicas", "2"], "Error: which deployment or replicaset? skiffctl scale deploy/NAME --replicas N\n"],
      [["scale", "pod/web", "--replicas", "2"], "Error: scale works on deployments and replicasets, not pods (skiffctl scale deploy/NAME --replicas N)\n"],
      [["scale", "deploy/nope", "--replicas", "2"], 'Error: deployment "nope" not found\n'],
    ];
    for (const [args, err] of cases) expect(await api.run(args), args.join(" ")).toMatchObject({ code: 1, err });
  });
});

describe("skiffctl set image", () => {
  it("changes the images of the named containers", async () => {
    expect(await api.run(["set", "image", "deploy/web", "main=web:2", "init=busybox:2"])).toEqual({ code: 0, out: "deployment.apps/web image updated\n", err: "" });
    const spec = (await web()).spec!.template!.spec!;
    expect(spec.containers.map((c) => c.image)).toEqual(["web:2", "log:1"]);
    expect(spec.initContainers[0].image).toBe("busybox:2");
    expect(await api.run(["set", "image", "replicaset", "db", "*=db:2"])).toMatchObject({ code: 0, out: "replicaset.apps/db image updated\n" });
    expect((await api.client<ReplicaSet>("ReplicaSet").get("default", "db")).spec!.template!.spec!.containers[0].image).toBe("db:2");
  });

  it("names the containers there are when one is unknown, and changes nothing", async () => {
    const before = (await web()).metadata!.resourceVersion;
    expect(await api.run(["set", "image", "deploy/web", "main=web:3", "nginx=nginx:1"])).toEqual({
      code: 1,
      out: "",
      err: 'Error: unable to find container named "nginx" in deployment "web"; its containers: init, main, log\n',
    });
    expect((await web()).metadata!.resourceVersion).toBe(before);
  });

  it("sets a pod's image", async () => {
    await api.client<Pod>("Pod").create(create(PodSchema, { metadata: { name: "p", namespace: "default" }, spec: { containers: [{ name: "c", image: "a:1" }] } }));
    expect(await api.run(["set", "image", "pod/p", "c=a:2"])).toMatchObject({ code: 0, out: "pod/p image updated\n" });
  });

  it("reads its arguments", async () => {
    expect(splitImageArgs(["deploy/web", "a=b:1", "c=registry:5000/d@sha256:00"])).toEqual({ targets: ["deploy/web"], images: [["a", "b:1"], ["c", "registry:5000/d@sha256:00"]] });
    expect(() => splitImageArgs(["deploy/web"])).toThrow(/give at least one CONTAINER=IMAGE/);
    expect(() => splitImageArgs(["deploy/web", "a=b", "web"])).toThrow(/"web" is not CONTAINER=IMAGE/);
    expect(await api.run(["set", "image", "svc/web", "a=b"])).toMatchObject({ code: 1, err: expect.stringMatching(/^Error: set image works on deployments, replicasets and pods, not services/) });
    expect(await api.run(["set", "frob"])).toMatchObject({ code: 1, err: expect.stringMatching(/^Error: unknown command "frob"; commands: image\nRun "skiffctl set --help"/) });
  });
});

describe("read-modify-write", () => {
  it("retries on a conflict, with the object read again", async () => {
    const real = api.client<Deployment>("Deployment");
    let conflicts = 1;
    const flaky: ResourceClient<Deployment> = {
      ...real,
      async update(obj, opts) {
        if (conflicts-- > 0) {
          const other = await real.get("default", "web");
          other.metadata!.labels.touched = "yes";
          await real.update(other); // someone else wins the race
        }
        return real.update(obj, opts);
      },
    };
    const seen: string[] = [];
    const r = await updateWithRetry(flaky, "default", "web", (d) => {
      seen.push(d.metadata!.labels.touched ?? "-");
      d.spec!.replicas = 7;
      return true;
    });
    expect(seen).toEqual(["-", "yes"]);
    expect(r.changed).toBe(true);
    expect((await web()).spec!.replicas).toBe(7);
    const failing = { ...real, update: async () => Promise.reject(new ConnectError("conflict", Code.Aborted)) };
    await expect(updateWithRetry(failing, "default", "web", () => true)).rejects.toThrow(/kept changing while it was being updated \(10 attempts\)/);
  });
});

describe("skiffctl get events", () => {
  it("prints LAST SEEN, TYPE, REASON, OBJECT, MESSAGE", async () => {
    const now = Date.now();
    const events = api.client("Event");
    await events.create(
      create(EventSchema, {
        metadata: { name: "web.1", namespace: "default" },
        involvedObject: { kind: "Deployment", name: "web", namespace: "default" },
        type: "Normal",
        reason: "ScalingReplicaSet",
        message: "Scaled up replica set web-abc to 3",
        firstTimestamp: timestampFromMs(now - 600_000),
        lastTimestamp: timestampFromMs(now - 65_000),
        count: 2,
      }),
    );
    await events.create(
      create(EventSchema, {
        metadata: { name: "web-abc-x.2", namespace: "default" },
        involvedObject: { kind: "Pod", name: "web-abc-x", namespace: "default" },
        type: "Warning",
        reason: "FailedScheduling",
        message: "0/1 nodes are available: 1 node(s) were unschedulable.",
        lastTimestamp: timestampFromMs(now - 5_000),
      }),
    );
    // In the order the apiserver lists them (by name), as kubectl prints them.
    const r = await api.run(["get", "events"]);
    expect(r.code).toBe(0);
    expect(r.out.split("\n")).toEqual([
      expect.stringMatching(/^LAST SEEN {3}TYPE {6}REASON {14}OBJECT {11}MESSAGE$/),
      expect.stringMatching(/^[5-9]s {10}Warning {3}FailedScheduling {4}pod\/web-abc-x {4}0\/1 nodes are available: 1 node\(s\) were unschedulable\.$/),
      expect.stringMatching(/^6\ds {9}Normal {4}ScalingReplicaSet {3}deployment\/web {3}Scaled up replica set web-abc to 3$/),
      "",
    ]);
    const one = await api.run(["get", "ev", "--field-selector", "involvedObject.kind=Pod"]);
    expect(one.out).toMatch(/^LAST SEEN .*\n.*FailedScheduling .*\n$/);
    expect((await api.run(["get", "events", "-A"])).out).toMatch(/^NAMESPACE {3}LAST SEEN/);
    expect(await api.run(["get", "events", "-n", "skiff-system"])).toMatchObject({ code: 0, out: "", err: "No resources found in skiff-system namespace.\n" });
  });
});
