import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { PodSchema, type Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { ServiceSchema, type Service } from "../../../gen/skiff/v1alpha1/service_pb.js";
import { computeSubsets, resolveTargetPort } from "./subsets.ts";

function svc(ports: { name?: string; port: number; targetPort?: string; protocol?: string }[], extra: { publishNotReadyAddresses?: boolean } = {}): Service {
  return create(ServiceSchema, {
    metadata: { name: "web", namespace: "default" },
    spec: { selector: { app: "web" }, ports: ports.map((p) => ({ name: p.name ?? "", port: p.port, targetPort: p.targetPort ?? "", protocol: p.protocol ?? "" })), ...extra },
  });
}

function pod(name: string, ip: string, o: { ready?: boolean; labels?: Record<string, string>; ports?: { name: string; containerPort: number; protocol?: string }[]; phase?: string; deleting?: boolean; node?: string } = {}): Pod {
  return create(PodSchema, {
    metadata: { name, namespace: "default", uid: `uid-${name}`, labels: o.labels ?? { app: "web" }, deletionTimestamp: o.deleting ? timestampNow() : undefined },
    spec: { nodeName: o.node ?? "n1", containers: [{ name: "c", image: "i", ports: (o.ports ?? []).map((p) => ({ ...p, protocol: p.protocol ?? "" })) }] },
    status: { phase: o.phase ?? "Running", podIp: ip, conditions: [{ type: "Ready", status: o.ready === false ? "False" : "True" }] },
  });
}

const view = (s: ReturnType<typeof computeSubsets>) =>
  s.map((x) => ({ ready: x.addresses.map((a) => a.ip), notReady: x.notReadyAddresses.map((a) => a.ip), ports: x.ports.map((p) => `${p.name}:${p.port}/${p.protocol}`) }));

describe("computeSubsets", () => {
  it("lists ready and not-ready pods with targetRef and node, ports resolved", () => {
    const s = computeSubsets(svc([{ port: 80, targetPort: "8080" }]), [pod("b", "10.0.0.2"), pod("a", "10.0.0.1"), pod("c", "10.0.0.3", { ready: false })]);
    expect(view(s)).toEqual([{ ready: ["10.0.0.1", "10.0.0.2"], notReady: ["10.0.0.3"], ports: [":8080/TCP"] }]);
    expect(s[0].addresses[0]).toMatchObject({ nodeName: "n1", targetRef: { kind: "Pod", namespace: "default", name: "a", uid: "uid-a" } });
  });

  it("leaves out pods not selected, terminating, finished or without an IP", () => {
    const s = computeSubsets(svc([{ port: 80 }]), [
      pod("ok", "10.0.0.1"),
      pod("other", "10.0.0.2", { labels: { app: "db" } }),
      pod("gone", "10.0.0.3", { deleting: true }),
      pod("done", "10.0.0.4", { phase: "Succeeded" }),
      pod("noip", ""),
    ]);
    expect(view(s)).toEqual([{ ready: ["10.0.0.1"], notReady: [], ports: [":80/TCP"] }]);
  });

  it("publishNotReadyAddresses puts every pod in addresses", () => {
    const s = computeSubsets(svc([{ port: 80 }], { publishNotReadyAddresses: true }), [pod("a", "10.0.0.1", { ready: false })]);
    expect(view(s)).toEqual([{ ready: ["10.0.0.1"], notReady: [], ports: [":80/TCP"] }]);
  });

  it("resolves named ports per pod; pods without the name are left out of that port, grouped by port set", () => {
    const service = svc([
      { name: "http", port: 80, targetPort: "web" },
      { name: "metrics", port: 9090, targetPort: "9090" },
    ]);
    const s = computeSubsets(service, [
      pod("v1", "10.0.0.1", { ports: [{ name: "web", containerPort: 8080 }] }),
      pod("v2", "10.0.0.2", { ports: [{ name: "web", containerPort: 8081 }] }),
      pod("v3", "10.0.0.3", { ports: [{ name: "web", containerPort: 8080 }] }),
      pod("udp", "10.0.0.4", { ports: [{ name: "web", containerPort: 53, protocol: "UDP" }] }),
    ]);
    expect(view(s)).toEqual([
      { ready: ["10.0.0.1", "10.0.0.3"], notReady: [], ports: ["http:8080/TCP", "metrics:9090/TCP"] },
      { ready: ["10.0.0.2"], notReady: [], ports: ["http:8081/TCP", "metrics:9090/TCP"] },
      { ready: ["10.0.0.4"], notReady: [], ports: ["metrics:9090/TCP"] },
    ]);
  });

  it("a pod with none of a named-only service's ports is not listed; a port-less service lists addresses", () => {
    expect(computeSubsets(svc([{ port: 80, targetPort: "web" }]), [pod("a", "10.0.0.1")])).toEqual([]);
    expect(view(computeSubsets(svc([]), [pod("a", "10.0.0.1")]))).toEqual([{ ready: ["10.0.0.1"], notReady: [], ports: [] }]);
  });

  it("resolveTargetPort", () => {
    const p = pod("a", "1.1.1.1", { ports: [{ name: "dns", containerPort: 53, protocol: "UDP" }] });
    const sp = (targetPort: string, protocol = "") => svc([{ port: 80, targetPort, protocol }]).spec!.ports[0];
    expect(resolveTargetPort(sp(""), p)).toBe(80);
    expect(resolveTargetPort(sp("8080"), p)).toBe(8080);
    expect(resolveTargetPort(sp("dns"), p)).toBeUndefined();
    expect(resolveTargetPort(sp("dns", "UDP"), p)).toBe(53);
    expect(resolveTargetPort(sp("70000"), p)).toBeUndefined();
  });
});
