import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { ServiceSchema, type Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createResourceClient } from "../client/resource-client.ts";
import type { ContainerConfig } from "../runtime/runtime.ts";
import { cond, cstatus, startHarness, waitFor, type Harness } from "./testing.ts";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Records every config the agent creates a container with. */
function recordConfigs(harness: Harness): ContainerConfig[] {
  const seen: ContainerConfig[] = [];
  const orig = harness.runtime.createContainer;
  harness.runtime.createContainer = async (cfg) => {
    seen.push(cfg);
    return orig(cfg);
  };
  return seen;
}

describe("running a pod", () => {
  it("gets Running with a pod IP, Ready conditions and container statuses", async () => {
    h = await startHarness();
    await h.createPod("web", { containers: [{ name: "app", resources: { requests: { cpu: "100m", memory: "64Mi" }, limits: {} } as any }] });
    const p = await h.waitForPod("web", "Running and Ready", (p) => p.status?.phase === "Running" && cond(p, "Ready") === "True");
    const s = p.status!;
    expect(s.podIp).toMatch(/^10\.88\.0\.\d+$/);
    expect(s.podIps.map((i) => i.ip)).toEqual([s.podIp]);
    expect(s.hostIp).toBe("127.0.0.1");
    expect(s.startTime).toBeDefined();
    expect(s.qosClass).toBe("Burstable");
    for (const type of ["PodScheduled", "Initialized", "ContainersReady", "Ready"]) expect(cond(p, type)).toBe("True");
    const c = cstatus(p)!;
    const [info] = await h.containersOf(p, "app");
    expect(c).toMatchObject({ name: "app", image: "busybox:1.36", ready: true, started: true, restartCount: 0 });
    expect(c.state?.running?.startedAt).toBeDefined();
    expect(c.containerId).toBe(`fake://${info.id}`);
    expect(c.imageId).toBe(info.imageId);
  });

  it("passes env (literal, fieldRef, $(VAR)), command, resources, log path and /etc files to the runtime", async () => {
    h = await startHarness();
    const configs = recordConfigs(h);
    await h.createPod("env", {
      hostname: "myhost",
      containers: [
        {
          name: "app",
          command: ["/bin/sh", "-c"],
          args: ["echo $(GREETING) from $(POD_NAME)"],
          workingDir: "/work",
          env: [
            { name: "GREETING", value: "hello" },
            { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
            { name: "NODE", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
            { name: "MSG", value: "$(GREETING) world $$(GREETING)" },
          ] as any,
          resources: { requests: { cpu: "250m" }, limits: { cpu: "500m", memory: "128Mi" } } as any,
        },
      ],
    });
    const p = await h.waitForPod("env", "Running", (p) => p.status?.phase === "Running");
    const cfg = configs[0];
    const env = Object.fromEntries(cfg.env.map((e) => [e.name, e.value]));
    const own = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith("KUBERNETES_")));
    expect(own).toEqual({ GREETING: "hello", POD_NAME: "env", POD_IP: p.status!.podIp, NODE: "node-1", MSG: "hello world $(GREETING)" });
    expect(cfg.command).toEqual(["/bin/sh", "-c"]);
    expect(cfg.args).toEqual(["echo hello from env"]);
    expect(cfg.workingDir).toBe("/work");
    expect(cfg.resources).toEqual({ cpuShares: 256, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, memoryLimitBytes: 128 * 2 ** 20 });
    expect(cfg.hostname).toBe("myhost");
    expect(cfg.logPath).toBe(join(h.rootDir, "pods", p.metadata!.uid, "logs", "app", "0.log"));
    const mounts = Object.fromEntries(cfg.mounts.map((m) => [m.containerPath, m.hostPath]));
    expect(await readFile(mounts["/etc/hosts"], "utf8")).toContain(`${p.status!.podIp}\tmyhost`);
    expect(await readFile(mounts["/etc/hostname"], "utf8")).toBe("myhost\n");
    expect(await readFile(mounts["/etc/resolv.conf"], "utf8")).toBe("nameserver 192.0.2.53\n");
  });

  it("mounts emptyDir volumes from the pod directory", async () => {
    h = await startHarness();
    const configs = recordConfigs(h);
    await h.createPod("vol", {
      volumes: [{ name: "scratch", emptyDir: {} }] as any,
      containers: [{ name: "app", volumeMounts: [{ name: "scratch", mountPath: "/scratch" }] as any }],
    });
    const p = await h.waitForPod("vol", "Running", (p) => p.status?.phase === "Running");
    const m = configs[0].mounts.find((m) => m.containerPath === "/scratch")!;
    expect(m.hostPath).toBe(join(h.rootDir, "pods", p.metadata!.uid, "volumes", "scratch"));
  });

  it("gives new containers the variables of the Services in their namespace, unless enableServiceLinks is false", async () => {
    h = await startHarness();
    const configs = recordConfigs(h);
    const svcs = createResourceClient<Service>(h.transport, "Service");
    const web = await svcs.create(create(ServiceSchema, { metadata: { name: "web-front", namespace: "default" }, spec: { ports: [{ name: "http", port: 80 }] } }));
    await h.server.ops.get("Namespace")!.create(create(NamespaceSchema, { metadata: { name: "other" } }));
    await svcs.create(create(ServiceSchema, { metadata: { name: "elsewhere", namespace: "other" }, spec: { ports: [{ port: 81 }] } }));
    // The agent reads Services from its informer, synced at start: a restart makes sure it has them.
    await h.restartAgent();
    await h.createPod("linked");
    await h.createPod("unlinked", { enableServiceLinks: false });
    await h.waitForPod("unlinked", "Running", (p) => p.status?.phase === "Running");
    await h.waitForPod("linked", "Running", (p) => p.status?.phase === "Running");
    const envOf = (pod: string) => Object.fromEntries(configs.find((c) => c.podName === pod)!.env.map((e) => [e.name, e.value]));
    expect(envOf("linked")).toMatchObject({ WEB_FRONT_SERVICE_HOST: web.spec!.clusterIp, WEB_FRONT_SERVICE_PORT_HTTP: "80", WEB_FRONT_PORT: `tcp://${web.spec!.clusterIp}:80` });
    expect(Object.keys(envOf("linked")).filter((k) => k.startsWith("ELSEWHERE_"))).toEqual([]);
    // Only the apiserver's own Service, which every pod gets (KUBERNETES_SERVICE_HOST/PORT…).
    const kube = await svcs.get("default", "kubernetes");
    expect(envOf("unlinked")).toMatchObject({ KUBERNETES_SERVICE_HOST: kube.spec!.clusterIp, KUBERNETES_SERVICE_PORT: "443" });
    expect(Object.keys(envOf("unlinked")).filter((k) => !k.startsWith("KUBERNETES_"))).toEqual([]);
  });

  it("takes env from ConfigMaps and Secrets; a missing one is CreateContainerConfigError until it exists", async () => {
    h = await startHarness();
    const configs = recordConfigs(h);
    await h.createPod("cm", {
      containers: [
        {
          name: "app",
          env: [
            { name: "X", valueFrom: { configMapKeyRef: { name: "c", key: "k" } } },
            { name: "GONE", valueFrom: { configMapKeyRef: { name: "c", key: "nope", optional: true } } },
          ],
          envFrom: [{ secretRef: { name: "s" }, prefix: "S_" }],
        },
      ] as any,
    });
    const p = await h.waitForPod("cm", "config error", (p) => cstatus(p)?.state?.waiting?.reason === "CreateContainerConfigError");
    expect(cstatus(p)!.state!.waiting!.message).toContain('secret "s" not found'); // envFrom is read first
    expect(p.status!.phase).toBe("Pending");
    const { createResourceClient } = await import("../client/resource-client.ts");
    const { create } = await import("@bufbuild/protobuf");
    const { ConfigMapSchema, SecretSchema } = await import("../../gen/skiff/v1alpha1/config_pb.js");
    await createResourceClient(h.transport, "ConfigMap").create(create(ConfigMapSchema, { metadata: { name: "c", namespace: "default" }, data: { k: "from-cm" } }));
    await createResourceClient(h.transport, "Secret").create(create(SecretSchema, { metadata: { name: "s", namespace: "default" }, data: { pw: new TextEncoder().encode("hunter2") } }));
    await h.waitForPod("cm", "Running", (p) => p.status?.phase === "Running", 20_000);
    const env = Object.fromEntries(configs.at(-1)!.env.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ X: "from-cm", S_pw: "hunter2" });
    expect(env.GONE).toBeUndefined();
  });

  it("gives containers their resources through env resourceFieldRef (the node's allocatable where no limit is set)", async () => {
    h = await startHarness();
    const configs = recordConfigs(h);
    await h.createPod("rf", {
      containers: [
        {
          name: "app",
          resources: { limits: { memory: "64Mi" }, requests: { cpu: "250m" } },
          env: [
            { name: "MEM_MI", valueFrom: { resourceFieldRef: { resource: "limits.memory", divisor: "1Mi" } } },
            { name: "CPU_REQ_M", valueFrom: { resourceFieldRef: { resource: "requests.cpu", divisor: "1m" } } },
            { name: "CPU_LIMIT", valueFrom: { resourceFieldRef: { resource: "limits.cpu" } } },
          ],
        },
      ] as any,
    });
    await h.waitForPod("rf", "Running", (p) => p.status?.phase === "Running");
    const env = Object.fromEntries(configs.at(-1)!.env.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ MEM_MI: "64", CPU_REQ_M: "250" });
    // No cpu limit: the node's allocatable cpu, in whole cores rounded up.
    expect(Number(env.CPU_LIMIT)).toBeGreaterThanOrEqual(1);
  });

  it("runs init containers in order to completion before the app containers", async () => {
    h = await startHarness();
    const order: string[] = [];
    const orig = h.runtime.startContainer;
    h.runtime.startContainer = async (id) => {
      const info = (await h!.runtime.containerStatus(id))!;
      order.push(info.containerName);
      return orig(id);
    };
    const created = await h.createPod("init", { initContainers: [{ name: "one" }, { name: "two" }] });
    const uid = created.metadata!.uid;
    const exitWhenRunning = async (name: string, code: number) => {
      const c = await waitFor(`${name} running`, async () =>
        (await h!.runtime.listContainers()).find((c) => c.podUid === uid && c.containerName === name && c.state === "running"),
      );
      h!.runtime.exit(c.id, code);
    };
    let p = await h.waitForPod("init", "Initialized=False", (p) => cond(p, "Initialized") === "False");
    expect(p.status!.phase).toBe("Pending");
    expect(cstatus(p)!.state!.waiting!.reason).toBe("PodInitializing");
    await exitWhenRunning("one", 0);
    await exitWhenRunning("two", 0);
    p = await h.waitForPod("init", "Running", (p) => p.status?.phase === "Running");
    expect(order).toEqual(["one", "two", "app"]);
    expect(cond(p, "Initialized")).toBe("True");
    expect(cstatus(p, "one")!.state!.terminated!.reason).toBe("Completed");
  });

  it("fails the pod when an init container fails under restartPolicy Never", async () => {
    h = await startHarness();
    const created = await h.createPod("initfail", { restartPolicy: "Never", initContainers: [{ name: "setup" }] });
    const c = await waitFor("setup running", async () =>
      (await h!.runtime.listContainers()).find((c) => c.podUid === created.metadata!.uid && c.state === "running"),
    );
    h.runtime.exit(c.id, 2);
    const p = await h.waitForPod("initfail", "Failed", (p) => p.status?.phase === "Failed");
    expect(cstatus(p, "setup")!.state!.terminated!.exitCode).toBe(2);
    expect(await h.containersOf(p, "app")).toEqual([]);
  });
});

describe("container exits", () => {
  it("restartPolicy Never: exit code 3 makes the pod Failed with exitCode 3, reason Error", async () => {
    h = await startHarness();
    await h.createPod("never", { restartPolicy: "Never" });
    let p = await h.waitForPod("never", "Running", (p) => p.status?.phase === "Running");
    const [c] = await h.containersOf(p);
    h.runtime.exit(c.id, 3);
    p = await h.waitForPod("never", "Failed", (p) => p.status?.phase === "Failed");
    const t = cstatus(p)!.state!.terminated!;
    expect(t).toMatchObject({ exitCode: 3, reason: "Error", containerId: `fake://${c.id}` });
    expect(t.finishedAt).toBeDefined();
    expect(cstatus(p)!.restartCount).toBe(0);
    expect(cond(p, "Ready")).toBe("False");
    // Nothing was restarted.
    await new Promise((r) => setTimeout(r, 500));
    expect(await h.containersOf(p)).toHaveLength(1);
  });

  it("restartPolicy OnFailure: restarts after a failure, not after success (then Succeeded)", async () => {
    h = await startHarness({ crashLoopBackoff: { initialMs: 50, maxMs: 100 } });
    await h.createPod("onfail", { restartPolicy: "OnFailure" });
    let p = await h.waitForPod("onfail", "Running", (p) => p.status?.phase === "Running");
    const [first] = await h.containersOf(p);
    h.runtime.exit(first.id, 1);
    p = await h.waitForPod("onfail", "restarted", (p) => cstatus(p)?.restartCount === 1 && !!cstatus(p)?.state?.running);
    expect(cstatus(p)!.lastState!.terminated).toMatchObject({ exitCode: 1, reason: "Error" });
    const second = (await h.containersOf(p)).find((c) => c.state === "running")!;
    expect(second.attempt).toBe(1);
    h.runtime.exit(second.id, 0);
    p = await h.waitForPod("onfail", "Succeeded", (p) => p.status?.phase === "Succeeded");
    expect(cstatus(p)!.state!.terminated).toMatchObject({ exitCode: 0, reason: "Completed" });
    expect(cond(p, "Ready")).toBe("False");
    await new Promise((r) => setTimeout(r, 500));
    expect((await h.containersOf(p)).filter((c) => c.state === "running")).toEqual([]);
  });

  it("reports OOMKilled when the kernel killed the container", async () => {
    h = await startHarness();
    await h.createPod("oom", { restartPolicy: "Never" });
    let p = await h.waitForPod("oom", "Running", (p) => p.status?.phase === "Running");
    const [c] = await h.containersOf(p);
    h.runtime.exit(c.id, 137, true);
    p = await h.waitForPod("oom", "Failed", (p) => p.status?.phase === "Failed");
    expect(cstatus(p)!.state!.terminated).toMatchObject({ exitCode: 137, reason: "OOMKilled" });
  });
});

describe("status writes", () => {
  it("writes one status for a pod that runs at once; a slow one shows ContainerCreating first", async () => {
    h = await startHarness({ firstStatusDelayMs: 300 });
    const pull = h.runtime.pullImage;
    h.runtime.pullImage = async (ref, o) => {
      if (ref.includes("slow")) await new Promise((r) => setTimeout(r, 1500));
      return pull(ref, o);
    };
    await h.createPod("slow", { containers: [{ name: "app", image: "slow:1" }] });
    const creating = await h.waitForPod("slow", "ContainerCreating", (p) => cstatus(p)?.state?.waiting?.reason === "ContainerCreating", 1400);
    expect(creating.status!.podIp).not.toBe("");
    await h.waitForPod("slow", "Running", (p) => p.status?.phase === "Running");

    const before = h.count("PodService/UpdateStatus");
    await h.createPod("fast");
    await h.waitForPod("fast", "Running", (p) => p.status?.phase === "Running");
    await new Promise((r) => setTimeout(r, 500));
    expect(h.count("PodService/UpdateStatus") - before).toBe(1);
  });

  it("does not rewrite the status when nothing changed", async () => {
    h = await startHarness({ resyncMs: 50 });
    await h.createPod("quiet");
    await h.waitForPod("quiet", "Running and Ready", (p) => p.status?.phase === "Running" && cond(p, "Ready") === "True");
    await new Promise((r) => setTimeout(r, 200));
    const writes = h.count("PodService/UpdateStatus");
    const rv = (await h.getPod("quiet")).metadata!.resourceVersion;
    // Many resyncs (every 50 ms) later: no UpdateStatus call, same resource version.
    await new Promise((r) => setTimeout(r, 800));
    expect(h.count("PodService/UpdateStatus")).toBe(writes);
    expect((await h.getPod("quiet")).metadata!.resourceVersion).toBe(rv);
  });

  it("a running container whose state the runtime cannot read for a while stays Running and Ready", async () => {
    // containerd's task list leaves out a task whose shim does not answer in time (a loaded
    // machine): the container is listed without a state ("unknown") though it still runs.
    h = await startHarness({ resyncMs: 50 });
    await h.createPod("steady", { containers: [{ name: "app", readinessProbe: { exec: { command: ["true"] }, periodSeconds: 1 } as any }] });
    const serving = (p: Pod) => p.status?.phase === "Running" && cond(p, "Ready") === "True";
    const ready = await h.waitForPod("steady", "Running and Ready", serving);
    const [c] = await h.containersOf(ready);
    const seen: string[] = [];
    const stop = new AbortController();
    const watching = (async () => {
      for await (const ev of h!.pods.watch("default", { resourceVersion: ready.metadata!.resourceVersion, signal: stop.signal })) {
        if (ev.type !== "BOOKMARK") seen.push(`${ev.object.status?.phase}/${cond(ev.object, "Ready")}`);
      }
    })().catch((err) => {
      if (!stop.signal.aborted) throw err;
    });
    const list = h.runtime.listContainers;
    let unreadable = true;
    h.runtime.listContainers = async () => (await list()).map((x) => (unreadable && x.id === c.id ? { ...x, state: "unknown" as const, pid: undefined } : x));
    await new Promise((r) => setTimeout(r, 600)); // a dozen resyncs and probe periods
    unreadable = false;
    // Something written afterwards shows on the watch: the pod's own label change.
    const cur = await h.getPod("steady");
    cur.metadata!.labels.checked = "yes";
    await h.pods.update(cur);
    await waitFor("the label change on the watch", () => seen.length > 0);
    await new Promise((r) => setTimeout(r, 300));
    stop.abort();
    await watching;
    expect(seen.filter((s) => s !== "Running/True")).toEqual([]);
    expect(serving(await h.getPod("steady"))).toBe(true);
  });

  it("keeps lastTransitionTime of conditions that did not flip", async () => {
    // A long back-off: the second exit keeps the container down (the first restarts at once).
    h = await startHarness({ crashLoopBackoff: { initialMs: 60_000, maxMs: 60_000 } });
    await h.createPod("ltt");
    let p = await h.waitForPod("ltt", "Ready", (p) => cond(p, "Ready") === "True");
    const scheduled = p.status!.conditions.find((c) => c.type === "PodScheduled")!.lastTransitionTime;
    const ready = p.status!.conditions.find((c) => c.type === "Ready")!.lastTransitionTime;
    const [c] = await h.containersOf(p);
    h.runtime.exit(c.id, 1);
    const again = await waitFor("attempt 1 running", async () => (await h!.containersOf(p)).find((x) => x.attempt === 1 && x.state === "running"));
    h.runtime.exit(again.id, 1);
    p = await h.waitForPod("ltt", "not Ready", (p) => cond(p, "Ready") === "False");
    expect(p.status!.conditions.find((c) => c.type === "PodScheduled")!.lastTransitionTime).toEqual(scheduled);
    expect(p.status!.conditions.find((c) => c.type === "Ready")!.lastTransitionTime).not.toEqual(ready);
  });
});
