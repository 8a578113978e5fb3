import { describe, expect, it } from "vitest";
import { PodSchema, PodStatusSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { ServiceSchema, ServiceSpecSchema } from "../../gen/skiff/v1alpha1/service_pb.js";
import { NodeSpecSchema, NodeSystemInfoSchema } from "../../gen/skiff/v1alpha1/node_pb.js";
import { kubeFieldName, ManifestFieldError, ManifestFieldErrors, toKubeJson, toProtoJson, UnknownFieldError, UnsupportedFieldError } from "./kube-json.ts";

const name = (schema: { fields: { name: string }[] }, proto: string) =>
  kubeFieldName((schema as any).fields.find((f: { name: string }) => f.name === proto));

describe("kubeFieldName", () => {
  it("spells initialisms the Kubernetes way", () => {
    expect(name(ServiceSpecSchema, "cluster_ip")).toBe("clusterIP");
    expect(name(ServiceSpecSchema, "cluster_ips")).toBe("clusterIPs");
    expect(name(ServiceSpecSchema, "external_ips")).toBe("externalIPs");
    expect(name(PodStatusSchema, "pod_ip")).toBe("podIP");
    expect(name(PodStatusSchema, "pod_ips")).toBe("podIPs");
    expect(name(PodStatusSchema, "host_ip")).toBe("hostIP");
    expect(name(PodStatusSchema, "qos_class")).toBe("qosClass");
    expect(name(NodeSpecSchema, "pod_cidr")).toBe("podCIDR");
    expect(name(NodeSpecSchema, "provider_id")).toBe("providerID");
    expect(name(NodeSystemInfoSchema, "machine_id")).toBe("machineID");
    expect(name(NodeSystemInfoSchema, "os_image")).toBe("osImage");
  });
});

describe("toProtoJson", () => {
  it("accepts both spellings and renames to proto3 JSON", () => {
    expect(toProtoJson(ServiceSpecSchema, { clusterIP: "10.0.0.1" })).toEqual({ clusterIp: "10.0.0.1" });
    expect(toProtoJson(ServiceSpecSchema, { clusterIp: "10.0.0.1" })).toEqual({ clusterIp: "10.0.0.1" });
    expect(toProtoJson(ServiceSpecSchema, { cluster_ip: "10.0.0.1" })).toEqual({ clusterIp: "10.0.0.1" });
  });

  it("turns int-or-string numbers into strings", () => {
    const out = toProtoJson(ServiceSchema, { spec: { ports: [{ port: 80, targetPort: 8080 }, { port: 81, targetPort: "http" }] } });
    expect(out).toEqual({ spec: { ports: [{ port: 80, targetPort: "8080" }, { port: 81, targetPort: "http" }] } });
  });

  it("accepts and checks quantities", () => {
    const c = (resources: unknown) => toProtoJson(PodSchema, { spec: { containers: [{ name: "a", image: "b", resources }] } });
    expect(c({ requests: { cpu: 1, memory: 128974848 }, limits: { cpu: "500m" } })).toEqual({
      spec: { containers: [{ name: "a", image: "b", resources: { requests: { cpu: "1", memory: "128974848" }, limits: { cpu: "500m" } } }] },
    });
    expect(() => c({ requests: { cpu: "lots" } })).toThrow(/^spec\.containers\[0\]\.resources\.requests\.cpu: invalid quantity "lots"/);
    expect(() => c({ requests: { memory: true } })).toThrow(/resources\.requests\.memory: must be a quantity/);
  });

  it("names an unsupported field by its full path", () => {
    const run = () => toProtoJson(PodSchema, { spec: { containers: [{ name: "a", image: "b", resizePolicy: [] }] } });
    expect(run).toThrow(UnsupportedFieldError);
    expect(run).toThrow("unsupported field spec.containers[0].resizePolicy (Skiff does not support it yet)");
  });

  it("treats null as unset and checks value types", () => {
    expect(toProtoJson(PodSchema, { metadata: { name: "p", creationTimestamp: null }, status: {} })).toEqual({ metadata: { name: "p" }, status: {} });
    expect(() => toProtoJson(PodSchema, { metadata: { labels: { version: 1 } } })).toThrow(
      new ManifestFieldError("metadata.labels.version", "must be a string, got number 1 (quote it in YAML)"),
    );
    expect(() => toProtoJson(PodSchema, { spec: { containers: [{ name: "a", image: "b", ports: [{ containerPort: "80" }] }] } })).toThrow(
      /containers\[0\]\.ports\[0\]\.containerPort: must be a 32-bit integer/,
    );
    expect(() => toProtoJson(PodSchema, { spec: { hostNetwork: "yes" } })).toThrow(/spec.hostNetwork: must be true or false/);
    expect(() => toProtoJson(PodSchema, { spec: { containers: {} } })).toThrow(/spec.containers: must be a list/);
    expect(() => toProtoJson(PodSchema, { metadata: { creationTimestamp: "yesterday" } })).toThrow(/invalid time/);
  });

  it("reads and writes Kubernetes' pod security fields unchanged (hostPID, hostIPC, securityContext)", () => {
    const kube = {
      spec: {
        hostPID: true,
        hostIPC: true,
        securityContext: { runAsUser: 1000, fsGroup: 2000, supplementalGroups: [3000], seccompProfile: { type: "RuntimeDefault" } },
        containers: [{ name: "a", image: "b", securityContext: { capabilities: { add: ["NET_BIND_SERVICE"], drop: ["ALL"] }, seccompProfile: { type: "Localhost", localhostProfile: "p.json" }, procMount: "Default" } }],
      },
    };
    const proto = toProtoJson(PodSchema, kube) as any;
    expect(proto.spec.hostPid).toBe(true);
    expect(proto.spec.hostIpc).toBe(true);
    expect(proto.spec.containers[0].securityContext.capabilities).toEqual({ add: ["NET_BIND_SERVICE"], drop: ["ALL"] });
    expect(toKubeJson(PodSchema, proto)).toEqual(kube);
    expect(() => toProtoJson(PodSchema, { spec: { securityContext: { seLinuxOptions: { level: "s0" } } } })).toThrow(/unsupported field spec.securityContext.seLinuxOptions/);
  });

  it("keeps int64 as numbers or digit strings", () => {
    expect(toProtoJson(PodSchema, { spec: { terminationGracePeriodSeconds: 10 } })).toEqual({ spec: { terminationGracePeriodSeconds: 10 } });
    expect(() => toProtoJson(PodSchema, { spec: { terminationGracePeriodSeconds: 1.5 } })).toThrow(/must be an integer/);
  });
});

describe("toKubeJson", () => {
  it("renames to Kubernetes spelling and prints int64 and int-or-string numbers as numbers", () => {
    const out = toKubeJson(ServiceSchema, {
      metadata: { name: "s", generation: "3" },
      spec: { clusterIp: "10.0.0.1", clusterIps: ["10.0.0.1"], ports: [{ port: 80, targetPort: "8080" }, { port: 81, targetPort: "http" }] },
    });
    expect(out).toEqual({
      metadata: { name: "s", generation: 3 },
      spec: { clusterIP: "10.0.0.1", clusterIPs: ["10.0.0.1"], ports: [{ port: 80, targetPort: 8080 }, { port: 81, targetPort: "http" }] },
    });
  });
});

describe("toProtoJson reports every problem at once", () => {
  const container = (extra: Record<string, unknown>) => ({ spec: { containers: [{ name: "a", image: "b", ...extra }] } });
  const problems = (value: unknown): string[] => {
    try {
      toProtoJson(PodSchema, value);
    } catch (err) {
      if (err instanceof ManifestFieldErrors) return err.errors.map((e) => e.message);
      return [(err as Error).message];
    }
    return [];
  };

  it("takes lifecycle hooks, gRPC probes and termination message fields as Kubernetes manifests write them", () => {
    const fields = {
      lifecycle: { postStart: { httpGet: { path: "/warm", port: 8080 } }, preStop: { sleep: { seconds: 5 } } },
      readinessProbe: { grpc: { port: 9000, service: "app" } },
      terminationMessagePath: "/tmp/why",
      terminationMessagePolicy: "FallbackToLogsOnError",
    };
    expect(problems(container(fields))).toEqual([]);
    expect(toProtoJson(PodSchema, container(fields))).toMatchObject({
      spec: { containers: [{ lifecycle: { postStart: { httpGet: { port: "8080" } }, preStop: { sleep: { seconds: 5 } } }, readinessProbe: { grpc: { port: 9000 } } }] },
    });
  });

  it("tells a Kubernetes field Skiff lacks from a typo, with the nearest name", () => {
    expect(problems(container({ securityContext: { readOnlyRootFilesytem: true } }))).toEqual([
      "unknown field spec.containers[0].securityContext.readOnlyRootFilesytem (did you mean readOnlyRootFilesystem?)",
    ]);
    expect(problems(container({ volumeDevices: [{ name: "disk", devicePath: "/dev/xvda" }] }))).toEqual([
      "unsupported field spec.containers[0].volumeDevices (Skiff does not support it yet)",
    ]);
    expect(problems({ spec: { priorityClassNam: "high" } })).toEqual(["unknown field spec.priorityClassNam (did you mean priorityClassName?)"]);
    expect(problems({ spec: { frobnicate: 1 } })).toEqual(["unknown field spec.frobnicate"]);
    expect(() => toProtoJson(PodSchema, container({ stdinOnce: true }))).toThrow(UnsupportedFieldError);
    expect(() => toProtoJson(PodSchema, container({ stdinonce: true }))).toThrow(UnknownFieldError);
  });

  it("lists every unsupported field, unknown field and bad value of an object in one error", () => {
    const pod = {
      spec: {
        shareProcessNamespace: true,
        priorityClassName: "high",
        hostNetwork: "yes",
        containers: [
          { name: "a", image: "b", stdinOnce: true, volumeDevices: [], ports: [{ containerPort: "80" }] },
          { name: "c", image: "d", resizePolicy: [], resources: { requests: { cpu: "lots" } }, imagePullPolicyy: "Always" },
        ],
      },
    };
    let err: unknown;
    try {
      toProtoJson(PodSchema, pod);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ManifestFieldErrors);
    expect((err as Error).message).toMatch(/^9 problems: /);
    expect((err as ManifestFieldErrors).errors.map((e) => e.message)).toEqual([
      "unsupported field spec.shareProcessNamespace (Skiff does not support it yet)",
      "unsupported field spec.priorityClassName (Skiff does not support it yet)",
      "spec.hostNetwork: must be true or false, got string \"yes\"",
      "unsupported field spec.containers[0].stdinOnce (Skiff does not support it yet)",
      "unsupported field spec.containers[0].volumeDevices (Skiff does not support it yet)",
      "spec.containers[0].ports[0].containerPort: must be a 32-bit integer, got string \"80\"",
      "unsupported field spec.containers[1].resizePolicy (Skiff does not support it yet)",
      expect.stringMatching(/^spec\.containers\[1\]\.resources\.requests\.cpu: invalid quantity "lots"/),
      "unknown field spec.containers[1].imagePullPolicyy (did you mean imagePullPolicy?)",
    ]);
  });
});

describe("a document of garbage", () => {
  it("counts every problem and spells out the first 50", () => {
    const junk = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`junk${i}`, i]));
    expect(() => toProtoJson(PodSchema, { spec: junk })).toThrow(/^60 problems: unknown field spec\.junk0; .*unknown field spec\.junk49; and 10 more$/);
  });
});
