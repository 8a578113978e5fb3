import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { kindByName } from "../../api/registry.ts";
import { decodeDocument } from "../manifest.ts";
import { parseManifestText } from "../manifest-source.ts";
import { formatList, formatObject, resourceRef, toKubeObject } from "./object.ts";

const svcKind = kindByName("Service")!;
const podKind = kindByName("Pod")!;

function service() {
  return create(svcKind.schema, {
    metadata: { name: "web", namespace: "default", generation: 2n, resourceVersion: "17", creationTimestamp: timestampFromDate(new Date("2024-05-01T10:00:00Z")) },
    spec: { type: "ClusterIP", clusterIp: "10.96.0.1", clusterIps: ["10.96.0.1"], ports: [{ port: 80, targetPort: "8080", protocol: "TCP" }] },
  });
}

describe("objects as Kubernetes prints them", () => {
  it("puts apiVersion and kind first, uses Kubernetes spelling and numbers for int64", () => {
    const o = toKubeObject(svcKind, service());
    expect(Object.keys(o).slice(0, 3)).toEqual(["apiVersion", "kind", "metadata"]);
    expect(o).toEqual({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", namespace: "default", resourceVersion: "17", generation: 2, creationTimestamp: "2024-05-01T10:00:00Z" },
      spec: { type: "ClusterIP", clusterIP: "10.96.0.1", clusterIPs: ["10.96.0.1"], ports: [{ port: 80, targetPort: 8080, protocol: "TCP" }] },
    });
    expect(JSON.stringify(o)).not.toContain("$typeName");
  });

  it("prints YAML and JSON that read back as the same object", () => {
    const yaml = formatObject(svcKind, service(), "yaml");
    expect(yaml).toContain("clusterIP: 10.96.0.1");
    expect(yaml).toContain("generation: 2\n");
    const back = decodeDocument(parseManifestText(yaml, "out.yaml")[0]).object;
    expect((back as any).spec.clusterIp).toBe("10.96.0.1");
    const json = JSON.parse(formatObject(svcKind, service(), "json"));
    expect(json.spec.ports[0].targetPort).toBe(8080);
  });

  it("prints pod IPs with Kubernetes spelling and quotes YAML 1.1 look-alikes", () => {
    const pod = create(podKind.schema, {
      metadata: { name: "p", labels: { enabled: "yes", mode: "0644" } },
      status: { phase: "Running", podIp: "10.1.0.5", hostIp: "192.168.1.2", podIps: [{ ip: "10.1.0.5" }] },
    });
    const o = toKubeObject(podKind, pod) as any;
    expect(o.status).toEqual({ phase: "Running", hostIP: "192.168.1.2", podIP: "10.1.0.5", podIPs: [{ ip: "10.1.0.5" }] });
    const y = formatObject(podKind, pod, "yaml");
    expect(YAML.parse(y, { version: "1.1" }).metadata.labels).toEqual({ enabled: "yes", mode: "0644" });
  });

  it("names objects with their group", () => {
    expect(resourceRef(kindByName("Deployment")!)).toBe("deployment.apps");
    expect(resourceRef(kindByName("Lease")!)).toBe("lease.coordination.k8s.io");
    expect(formatObject(podKind, create(podKind.schema, { metadata: { name: "p" } }), "name")).toBe("pod/p\n");
  });

  it("wraps several objects in a List", () => {
    const list = JSON.parse(formatList([{ kind: svcKind, obj: service() }], "json"));
    expect(list).toMatchObject({ apiVersion: "v1", kind: "List", items: [{ kind: "Service" }] });
  });
});
