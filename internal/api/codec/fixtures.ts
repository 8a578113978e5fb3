// Realistic objects as bench scale's components exchange them: a Running Pod of a Deployment
// (containers, statuses, conditions, volumes), a Ready Node, a Deployment. Used by the tests and
// bench/codec.ts.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { DeploymentSchema, type Deployment } from "../../../gen/skiff/v1alpha1/deployment_pb.js";
import { NodeSchema, type Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema, type Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";

const at = timestampFromMs(1_780_000_000_123);
const meta = (name: string, rv: number) => ({
  name, namespace: "default", uid: "6f1c2b9e-1d2a-4c3b-9e8f-7a6b5c4d3e2f", resourceVersion: String(rv), generation: 3n, creationTimestamp: at,
});

export function runningPod(): Pod {
  return create(PodSchema, {
    metadata: {
      ...meta("web-7d9f8c6b5-x4k2q", 120_045),
      labels: { app: "web", "pod-template-hash": "7d9f8c6b5" },
      annotations: { "skiff.dev/restartedAt": "2026-12-06T22:00:00Z" },
      ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-7d9f8c6b5", uid: "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d", controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      nodeName: "hollow-123",
      serviceAccountName: "default",
      terminationGracePeriodSeconds: 30n,
      containers: [{
        name: "app",
        image: "skiff.local/busybox-httpd:v1",
        command: ["httpd", "-f", "-p", "8080"],
        env: [{ name: "MODE", value: "production" }, { name: "LOG_LEVEL", value: "info" }],
        ports: [{ containerPort: 8080, protocol: "TCP", name: "http" }],
        resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { memory: "64Mi" } },
        volumeMounts: [{ name: "kube-api-access", mountPath: "/var/run/secrets/kubernetes.io/serviceaccount", readOnly: true }, { name: "cache", mountPath: "/cache" }],
      }],
      volumes: [
        { name: "kube-api-access", projected: { sources: [{ serviceAccountToken: { path: "token", expirationSeconds: 3607n } }], defaultMode: 0o644 } },
        { name: "cache", emptyDir: { medium: "", sizeLimit: "64Mi" } },
      ],
    },
    status: {
      phase: "Running",
      hostIp: "10.200.1.123",
      podIp: "10.244.1.17",
      podIps: [{ ip: "10.244.1.17" }],
      startTime: at,
      qosClass: "Burstable",
      conditions: ["PodScheduled", "Initialized", "ContainersReady", "Ready"].map((type) => ({ type, status: "True", lastTransitionTime: at })),
      containerStatuses: [{
        name: "app", ready: true, started: true, restartCount: 0, image: "skiff.local/busybox-httpd:v1",
        imageId: "sha256:" + "ab".repeat(32), containerId: "fake://" + "cd".repeat(32), state: { running: { startedAt: at } },
      }],
    },
  });
}

export function readyNode(): Node {
  return create(NodeSchema, {
    metadata: { ...meta("hollow-123", 99_812), labels: { "kubernetes.io/hostname": "hollow-123", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64" } },
    spec: { podCidr: "10.244.123.0/24", podCidrs: ["10.244.123.0/24"], taints: [] },
    status: {
      capacity: { cpu: "4", memory: "8Gi", pods: "110" },
      allocatable: { cpu: "4", memory: "7936Mi", pods: "110" },
      conditions: ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"].map((type) => ({
        type, status: type === "Ready" ? "True" : "False", reason: type === "Ready" ? "KubeletReady" : "KubeletHasSufficient" + type.replace("Pressure", ""),
        message: "node agent is posting ready status", lastTransitionTime: at, lastHeartbeatTime: at,
      })),
      addresses: [{ type: "InternalIP", address: "10.200.1.123" }, { type: "Hostname", address: "hollow-123" }],
      nodeInfo: { machineId: "ab".repeat(16), bootId: "cd".repeat(16), kernelVersion: "6.8.0", osImage: "Debian GNU/Linux 13", containerRuntimeVersion: "fake://1.0", kubeletVersion: "skiff/0.1.0", operatingSystem: "linux", architecture: "amd64" },
    },
  });
}

export function deployment(): Deployment {
  const pod = runningPod();
  return create(DeploymentSchema, {
    metadata: { ...meta("web", 88_001), labels: { app: "web" }, annotations: { "deployment.kubernetes.io/revision": "1" } },
    spec: {
      replicas: 100,
      selector: { matchLabels: { app: "web" } },
      template: { metadata: { labels: { app: "web" } }, spec: { ...pod.spec!, nodeName: "" } },
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "25%", maxSurge: "25%" } },
      revisionHistoryLimit: 10,
      progressDeadlineSeconds: 600,
    },
    status: {
      observedGeneration: 3n, replicas: 100, updatedReplicas: 100, readyReplicas: 100, availableReplicas: 100,
      conditions: [{ type: "Available", status: "True", reason: "MinimumReplicasAvailable", lastTransitionTime: at }, { type: "Progressing", status: "True", reason: "NewReplicaSetAvailable", lastTransitionTime: at }],
    },
  });
}
