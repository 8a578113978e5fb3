import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { kindByName } from "../../api/registry.ts";
import { formatObjectsTable } from "./get-table.ts";
import { podStatus } from "./pod-status.ts";

const now = Date.now();
const ago = (s: number) => timestampFromMs(now - s * 1000);
const podKind = kindByName("Pod")!;

function pod(init: Record<string, unknown>) {
  return create(podKind.schema, {
    metadata: { name: "web-1", namespace: "default", creationTimestamp: ago(5) },
    spec: { containers: [{ name: "a", image: "x" }, { name: "b", image: "y" }], nodeName: "node-1" },
    ...init,
  });
}

describe("pod status", () => {
  it("shows the most telling reason", () => {
    expect(podStatus(pod({ status: { phase: "Pending" } }))).toBe("Pending");
    expect(podStatus(pod({ status: { phase: "Pending", containerStatuses: [{ name: "a", state: { waiting: { reason: "ContainerCreating" } } }] } }))).toBe("ContainerCreating");
    expect(podStatus(pod({ status: { phase: "Running", containerStatuses: [{ name: "a", state: { waiting: { reason: "CrashLoopBackOff" } } }] } }))).toBe("CrashLoopBackOff");
    expect(podStatus(pod({ status: { phase: "Failed", containerStatuses: [{ name: "a", state: { terminated: { exitCode: 2 } } }] } }))).toBe("ExitCode:2");
    expect(podStatus(pod({ spec: { containers: [{ name: "a", image: "x" }], initContainers: [{ name: "i", image: "x" }] }, status: { phase: "Pending", initContainerStatuses: [{ name: "i", state: { running: {} } }] } }))).toBe("Init:0/1");
    expect(podStatus(pod({ metadata: { name: "p", deletionTimestamp: ago(0) }, status: { phase: "Running" } }))).toBe("Terminating");
  });
});

describe("get tables", () => {
  it("prints pods with READY, STATUS, RESTARTS, AGE and, wide, IP and NODE", () => {
    const p = pod({
      status: {
        phase: "Running",
        podIp: "10.1.0.4",
        containerStatuses: [
          { name: "a", ready: true, restartCount: 1, state: { running: {} } },
          { name: "b", ready: false, restartCount: 2, state: { running: {} } },
        ],
      },
    });
    expect(formatObjectsTable(podKind, [p], { now })).toBe("NAME    READY   STATUS    RESTARTS   AGE\nweb-1   1/2     Running   3          5s\n");
    expect(formatObjectsTable(podKind, [p], { now, wide: true, allNamespaces: true })).toBe(
      "NAMESPACE   NAME    READY   STATUS    RESTARTS   AGE   IP         NODE\ndefault     web-1   1/2     Running   3          5s    10.1.0.4   node-1\n",
    );
  });

  it("prints deployments, services, nodes and namespaces", () => {
    const dep = create(kindByName("Deployment")!.schema, { metadata: { name: "web", creationTimestamp: ago(180) }, spec: { replicas: 3 }, status: { readyReplicas: 2, updatedReplicas: 3, availableReplicas: 2 } });
    expect(formatObjectsTable(kindByName("Deployment")!, [dep], { now, withKind: true })).toBe(
      "NAME                  READY   UP-TO-DATE   AVAILABLE   AGE\ndeployment.apps/web   2/3     3            2           3m\n",
    );
    const svc = create(kindByName("Service")!.schema, { metadata: { name: "web", creationTimestamp: ago(2 * 86400) }, spec: { type: "NodePort", clusterIp: "10.96.0.9", ports: [{ port: 80, nodePort: 30080, protocol: "TCP" }, { port: 53, protocol: "UDP" }] } });
    expect(formatObjectsTable(kindByName("Service")!, [svc], { now })).toBe(
      "NAME   TYPE       CLUSTER-IP   EXTERNAL-IP   PORT(S)               AGE\nweb    NodePort   10.96.0.9    <none>        80:30080/TCP,53/UDP   2d\n",
    );
    const node = create(kindByName("Node")!.schema, {
      metadata: { name: "n1", creationTimestamp: ago(60), labels: { "node-role.kubernetes.io/control-plane": "" } },
      spec: { unschedulable: true },
      status: { conditions: [{ type: "Ready", status: "True" }], nodeInfo: { kubeletVersion: "skiff-0.1.0" } },
    });
    expect(formatObjectsTable(kindByName("Node")!, [node], { now })).toBe(
      "NAME   STATUS                     ROLES           AGE   VERSION\nn1     Ready,SchedulingDisabled   control-plane   60s   skiff-0.1.0\n",
    );
    const ns = create(kindByName("Namespace")!.schema, { metadata: { name: "default", creationTimestamp: ago(10) }, status: { phase: "Active" } });
    expect(formatObjectsTable(kindByName("Namespace")!, [ns], { now, allNamespaces: true })).toBe("NAME      STATUS   AGE\ndefault   Active   10s\n");
  });

  it("prints nothing for no objects", () => {
    expect(formatObjectsTable(podKind, [], { now })).toBe("");
  });
});
