import { create } from "@bufbuild/protobuf";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { ContainerSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createFakeRuntime } from "../runtime/fake/fake.ts";
import type { ContainerInfo } from "../runtime/runtime.ts";
import { containerResources, expandVars } from "./container-config.ts";
import { computePodStatus, qosClass, shouldRestart, type ProbeResults } from "./pod-status.ts";
import { createProbeManager } from "./probes.ts";
import { newPodState } from "./state.ts";
import { testPod } from "./testing.ts";

const probes = { ready: () => true, started: () => true };
let n = 0;
function inst(name: string, state: ContainerInfo["state"], extra: Partial<ContainerInfo> = {}): ContainerInfo {
  n++;
  return {
    id: `c${n}`, podUid: "", podName: "p", podNamespace: "default", containerName: name, attempt: 0,
    image: "busybox:1.36", imageId: "sha256:x", state, createdAt: new Date(1000 + n), logPath: "", ...extra,
  };
}

function statusOf(spec: Parameters<typeof testPod>[1], containers: ContainerInfo[], results: ProbeResults = probes) {
  const pod = testPod("p", spec);
  pod.metadata!.uid = "u";
  for (const c of containers) c.podUid = "u";
  return computePodStatus({ pod, state: newPodState(pod), containers, hostIP: "10.0.0.1", podIP: "10.88.0.5", runtimeName: "containerd", probes: results, now: new Date() });
}

describe("pod phase", () => {
  it("is Pending with nothing started, Running with a running container", () => {
    expect(statusOf({}, []).phase).toBe("Pending");
    expect(statusOf({}, [inst("app", "running")]).phase).toBe("Running");
  });

  it("follows the restart policy once every container stopped", () => {
    const ok = () => inst("app", "exited", { exitCode: 0 });
    const bad = () => inst("app", "exited", { exitCode: 1 });
    expect(statusOf({ restartPolicy: "Never" }, [ok()]).phase).toBe("Succeeded");
    expect(statusOf({ restartPolicy: "Never" }, [bad()]).phase).toBe("Failed");
    expect(statusOf({ restartPolicy: "OnFailure" }, [ok()]).phase).toBe("Succeeded");
    expect(statusOf({ restartPolicy: "OnFailure" }, [bad()]).phase).toBe("Running");
    expect(statusOf({ restartPolicy: "Always" }, [ok()]).phase).toBe("Running");
  });

  it("stays Running while one of two containers still runs, even under Never", () => {
    const s = statusOf({ restartPolicy: "Never", containers: [{ name: "a" }, { name: "b" }] }, [inst("a", "exited", { exitCode: 1 }), inst("b", "running")]);
    expect(s.phase).toBe("Running");
  });

  it("is Pending until init containers completed, Failed if one failed under Never", () => {
    const spec = { restartPolicy: "Never", initContainers: [{ name: "init" }] };
    expect(statusOf(spec, [inst("init", "running")]).phase).toBe("Pending");
    expect(statusOf(spec, [inst("init", "exited", { exitCode: 1 })]).phase).toBe("Failed");
    expect(statusOf({ ...spec, restartPolicy: "Always" }, [inst("init", "exited", { exitCode: 1 })]).phase).toBe("Pending");
  });

  it("keeps a terminal phase", () => {
    const pod = testPod("p", {});
    pod.status = { phase: "Succeeded", conditions: [] } as any;
    const s = computePodStatus({ pod, state: newPodState(pod), containers: [], hostIP: "", podIP: "", runtimeName: "x", probes, now: new Date() });
    expect(s.phase).toBe("Succeeded");
  });
});

describe("container status", () => {
  it("reports the newest instance, the one before as lastState, and restartCount from the attempt label", () => {
    const s = statusOf({}, [inst("app", "exited", { exitCode: 2, attempt: 0 }), inst("app", "running", { attempt: 1, startedAt: new Date() })]);
    const c = s.containerStatuses[0];
    expect(c.restartCount).toBe(1);
    expect(c.state!.running).toBeDefined();
    expect(c.lastState!.terminated).toMatchObject({ exitCode: 2, reason: "Error" });
    expect(c.containerId).toMatch(/^containerd:\/\/c\d+$/);
  });

  it("names OOMKilled, Completed and Error", () => {
    const reason = (extra: Partial<ContainerInfo>) =>
      statusOf({ restartPolicy: "Never" }, [inst("app", "exited", extra)]).containerStatuses[0].state!.terminated!.reason;
    expect(reason({ exitCode: 137, oomKilled: true })).toBe("OOMKilled");
    expect(reason({ exitCode: 0 })).toBe("Completed");
    expect(reason({ exitCode: 1 })).toBe("Error");
  });

  it("a running container whose probes have not run yet is neither started nor ready; one without probes is both", () => {
    // The prober has not seen this pod (its workers start after the pod's first status is due).
    const prober = createProbeManager({ runtime: createFakeRuntime(), log: pino({ level: "silent" }), onChange: () => {}, onKill: () => {} });
    const probe = { exec: { command: ["check"] } } as any;
    const running = () => [inst("app", "running", { startedAt: new Date() })];
    const probed = statusOf({ containers: [{ name: "app", readinessProbe: probe, startupProbe: probe }] }, running(), prober);
    expect(probed.containerStatuses[0]).toMatchObject({ started: false, ready: false });
    expect(probed.conditions.find((c) => c.type === "Ready")).toMatchObject({ status: "False", reason: "ContainersNotReady" });
    const readinessOnly = statusOf({ containers: [{ name: "app", readinessProbe: probe }] }, running(), prober);
    expect(readinessOnly.containerStatuses[0]).toMatchObject({ started: true, ready: false });
    const plain = statusOf({}, running(), prober);
    expect(plain.containerStatuses[0]).toMatchObject({ started: true, ready: true });
    expect(plain.conditions.find((c) => c.type === "Ready")!.status).toBe("True");
    prober.stop();
  });
});

describe("qosClass", () => {
  const pod = (resources: object) => testPod("p", { containers: [{ name: "a", resources: resources as any }] });
  it("follows Kubernetes' rules", () => {
    expect(qosClass(pod({}))).toBe("BestEffort");
    expect(qosClass(pod({ limits: { cpu: "1", memory: "1Gi" } }))).toBe("Guaranteed");
    expect(qosClass(pod({ requests: { cpu: "1", memory: "1Gi" }, limits: { cpu: "1", memory: "1Gi" } }))).toBe("Guaranteed");
    expect(qosClass(pod({ requests: { cpu: "500m" }, limits: { cpu: "1", memory: "1Gi" } }))).toBe("Burstable");
    expect(qosClass(pod({ requests: { memory: "1Gi" } }))).toBe("Burstable");
  });
});

describe("restart rules", () => {
  it("Always restarts, OnFailure only after a failure, Never never; init containers only after a failure", () => {
    expect([shouldRestart("Always", 0, false), shouldRestart("Always", 1, false)]).toEqual([true, true]);
    expect([shouldRestart("OnFailure", 0, false), shouldRestart("OnFailure", 1, false)]).toEqual([false, true]);
    expect([shouldRestart("Never", 0, false), shouldRestart("Never", 1, false)]).toEqual([false, false]);
    expect([shouldRestart("Always", 0, true), shouldRestart("Always", 1, true)]).toEqual([false, true]);
  });
});

describe("container config", () => {
  it("maps cpu and memory to cgroup settings", () => {
    const c = (resources: object) => create(ContainerSchema, { name: "a", image: "i", resources: resources as any });
    expect(containerResources(c({}))).toEqual({ cpuShares: 2 });
    expect(containerResources(c({ requests: { cpu: "1" } }))).toEqual({ cpuShares: 1024 });
    expect(containerResources(c({ requests: { cpu: "1m" } }))).toEqual({ cpuShares: 2 });
    // A limit alone is also the request.
    expect(containerResources(c({ limits: { cpu: "1500m", memory: "1Gi" } }))).toEqual({
      cpuShares: 1536, cpuQuotaUs: 150_000, cpuPeriodUs: 100_000, memoryLimitBytes: 2 ** 30,
    });
  });

  it("expands $(VAR) like Kubernetes", () => {
    const vars = new Map([["A", "1"]]);
    expect(expandVars("$(A)-$(B)-$$(A)-$", vars)).toBe("1-$(B)-$(A)-$");
  });
});
