import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { kindByName } from "../../api/registry.ts";
import { describeObject } from "./describe.ts";
import { renderFields } from "./describe-layout.ts";

const now = Date.now();
const ago = (s: number) => timestampFromMs(now - s * 1000);

describe("describe layout", () => {
  it("aligns values and continues multi-line ones", () => {
    expect(renderFields([["Name", "web"], ["Labels", ["a=1", "b=2"]], ["Skipped", undefined], ["State", "Running", [["Started", "now"]]]])).toEqual([
      "Name:    web",
      "Labels:  a=1",
      "         b=2",
      "State:   Running",
      "  Started:  now",
    ]);
  });
});

describe("describeObject", () => {
  it("describes a pod: containers, state, readiness, restarts, conditions, node, IP, events", () => {
    const pod = create(kindByName("Pod")!.schema, {
      metadata: { name: "web-1", namespace: "default", labels: { app: "web" }, ownerReferences: [{ kind: "ReplicaSet", name: "web-abc", controller: true }] },
      spec: {
        nodeName: "node-1",
        containers: [{ name: "httpd", image: "busybox:1", ports: [{ containerPort: 8080, protocol: "TCP" }], resources: { requests: { cpu: "50m" } }, readinessProbe: { httpGet: { path: "/", port: "8080" }, periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 } }],
      },
      status: {
        phase: "Running",
        podIp: "10.1.0.4",
        hostIp: "192.168.0.2",
        conditions: [{ type: "Ready", status: "True" }],
        containerStatuses: [{ name: "httpd", ready: true, restartCount: 2, state: { running: { startedAt: ago(30) } } }],
      },
    });
    const events = [
      { type: "Normal", reason: "Scheduled", message: "assigned default/web-1 to node-1", count: 1, reportingComponent: "", source: { component: "default-scheduler", host: "" }, lastTimestamp: ago(40) },
    ];
    const text = describeObject(kindByName("Pod")!, pod, { events: events as any }, now);
    expect(text).toMatch(/^Name:\s+web-1\nNamespace:\s+default\nLabels:\s+app=web\nAnnotations:\s+<none>\n/);
    expect(text).toMatch(/Node:\s+node-1\/192\.168\.0\.2/);
    expect(text).toMatch(/IP:\s+10\.1\.0\.4/);
    expect(text).toMatch(/Controlled By:\s+ReplicaSet\/web-abc/);
    expect(text).toMatch(/Containers:\n {2}httpd:\n/);
    expect(text).toMatch(/Image:\s+busybox:1/);
    expect(text).toMatch(/State:\s+Running\n\s+Started:/);
    expect(text).toMatch(/Ready:\s+True/);
    expect(text).toMatch(/Restart Count:\s+2/);
    expect(text).toMatch(/Readiness:\s+http-get http:\/\/:8080\/ delay=0s timeout=1s period=10s #success=1 #failure=3/);
    expect(text).toMatch(/Conditions:\n {2}Type\s+Status\n {2}----\s+------\n {2}Ready\s+True/);
    expect(text).toMatch(/Events:\n {2}Type\s+Reason\s+Age\s+From\s+Message\n.*\n {2}Normal\s+Scheduled\s+40s\s+default-scheduler\s+assigned default\/web-1 to node-1\n$/);
  });

  it("describes a deployment and a service; no events is <none>", () => {
    const dep = create(kindByName("Deployment")!.schema, {
      metadata: { name: "web", namespace: "default" },
      spec: { replicas: 3, selector: { matchLabels: { app: "web" } }, strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: "25%", maxUnavailable: "25%" } }, template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "c", image: "i" }] } } },
      status: { replicas: 3, updatedReplicas: 3, availableReplicas: 2, unavailableReplicas: 1 },
    });
    const d = describeObject(kindByName("Deployment")!, dep, { events: [] }, now);
    expect(d).toMatch(/Replicas:\s+3 desired \| 3 updated \| 3 total \| 2 available \| 1 unavailable/);
    expect(d).toMatch(/RollingUpdateStrategy:\s+25% max unavailable, 25% max surge/);
    expect(d).toMatch(/Selector:\s+app=web/);
    expect(d).toMatch(/Events: {2}<none>\n$/);
    const svc = create(kindByName("Service")!.schema, { metadata: { name: "web", namespace: "default" }, spec: { selector: { app: "web" }, clusterIp: "10.96.0.5", ports: [{ port: 80, targetPort: "8080", protocol: "TCP" }] } });
    const ep = create(kindByName("Endpoints")!.schema, { metadata: { name: "web" }, subsets: [{ addresses: [{ ip: "10.1.0.4" }], ports: [{ port: 8080 }] }] });
    const s = describeObject(kindByName("Service")!, svc, { events: [], endpoints: ep }, now);
    expect(s).toMatch(/IP:\s+10\.96\.0\.5/);
    expect(s).toMatch(/TargetPort:\s+8080\/TCP/);
    expect(s).toMatch(/Endpoints:\s+10\.1\.0\.4:8080/);
  });
});
