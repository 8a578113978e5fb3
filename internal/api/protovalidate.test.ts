import { create, fromJson, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import type { GenFile } from "@bufbuild/protobuf/codegenv2";
import { buildPath } from "@bufbuild/protobuf/reflect";
import { describe, expect, it } from "vitest";
import { file_skiff_v1alpha1_config } from "../../gen/skiff/v1alpha1/config_pb.js";
import { file_skiff_v1alpha1_coordination } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { DeploymentSchema, file_skiff_v1alpha1_deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import { file_skiff_v1alpha1_endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import { file_skiff_v1alpha1_meta, ObjectMetaSchema, OwnerReferenceSchema } from "../../gen/skiff/v1alpha1/meta_pb.js";
import { file_skiff_v1alpha1_namespace } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { file_skiff_v1alpha1_node, NodeSchema } from "../../gen/skiff/v1alpha1/node_pb.js";
import { file_skiff_v1alpha1_pod, PodSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { file_skiff_v1alpha1_replica_set, ReplicaSetSchema } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import { file_skiff_v1alpha1_service, ServiceSchema } from "../../gen/skiff/v1alpha1/service_pb.js";
import { file_skiff_v1alpha1_storage } from "../../gen/skiff/v1alpha1/storage_pb.js";
import { jsonPath, ruleViolations } from "./protovalidate.ts";

const paths = (schema: DescMessage, json: JsonValue) => ruleViolations(schema, fromJson(schema, json)).map((v) => v.field);

const goodPodSpec = {
  containers: [{ name: "web", image: "nginx:1.27", ports: [{ containerPort: 80 }] }],
};

describe("ruleViolations", () => {
  it("accepts a valid pod, with or without defaulted fields", () => {
    expect(paths(PodSchema, { metadata: { name: "web", namespace: "default" }, spec: goodPodSpec })).toEqual([]);
    const full = {
      metadata: { name: "web", labels: { app: "web" } },
      spec: {
        restartPolicy: "OnFailure",
        dnsPolicy: "ClusterFirstWithHostNet",
        terminationGracePeriodSeconds: "0",
        containers: [
          {
            name: "web",
            image: "nginx",
            imagePullPolicy: "IfNotPresent",
            ports: [{ containerPort: 8080, hostPort: 80, protocol: "UDP" }],
            env: [{ name: "MODE", value: "prod" }],
            readinessProbe: { httpGet: { path: "/", port: "8080" }, periodSeconds: 5 },
          },
        ],
        tolerations: [{ key: "k", operator: "Exists", effect: "NoExecute" }],
        affinity: {
          nodeAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              { weight: 100, preference: { matchExpressions: [{ key: "cpu", operator: "Gt", values: ["4"] }] } },
            ],
          },
        },
        volumes: [{ name: "data", emptyDir: {} }],
      },
    };
    expect(paths(PodSchema, full)).toEqual([]);
  });

  it("reports no containers, an empty image, containerPort 70000 and an unknown restartPolicy", () => {
    const pod = {
      metadata: { name: "bad" },
      spec: {
        restartPolicy: "Sometimes",
        containers: [],
        initContainers: [{ name: "init", image: "", ports: [{ containerPort: 70000 }] }],
      },
    };
    const got = ruleViolations(PodSchema, fromJson(PodSchema, pod));
    expect(got.map((v) => v.field).sort()).toEqual(
      [
        "spec.containers",
        "spec.initContainers[0].image",
        "spec.initContainers[0].ports[0].containerPort",
        "spec.restartPolicy",
      ].sort(),
    );
    const restart = got.find((v) => v.field === "spec.restartPolicy");
    expect(restart?.description).toContain("Always");
    expect(restart?.message).toBe(restart?.description);
  });

  it("checks the pod template of a Deployment and a ReplicaSet", () => {
    const spec = { ...goodPodSpec, restartPolicy: "Sometimes" };
    const deployment = { metadata: { name: "d" }, spec: { replicas: 2, template: { spec } } };
    expect(paths(DeploymentSchema, deployment)).toEqual(["spec.template.spec.restartPolicy"]);
    const rs = { metadata: { name: "rs" }, spec: { replicas: -1, template: { spec: { containers: [{ name: "c" }] } } } };
    expect(paths(ReplicaSetSchema, rs).sort()).toEqual(["spec.replicas", "spec.template.spec.containers[0].image"]);
  });

  it("treats empty enum-like strings as unset but requires what Kubernetes requires", () => {
    expect(paths(ServiceSchema, { metadata: { name: "s" }, spec: { ports: [{ port: 80 }] } })).toEqual([]);
    const svc = {
      metadata: { name: "s" },
      spec: { type: "Internal", sessionAffinity: "Sticky", ports: [{ port: 0, nodePort: 70000, protocol: "tcp" }] },
    };
    expect(paths(ServiceSchema, svc).sort()).toEqual([
      "spec.ports[0].nodePort",
      "spec.ports[0].port",
      "spec.ports[0].protocol",
      "spec.sessionAffinity",
      "spec.type",
    ]);
    // a taint's effect has no default
    expect(paths(NodeSchema, { metadata: { name: "n" }, spec: { taints: [{ key: "k", effect: "" }] } })).toEqual([
      "spec.taints[0].effect",
    ]);
  });

  it("checks numbers and operators deep in a pod spec", () => {
    const spec = {
      containers: [
        {
          name: "c",
          image: "i",
          livenessProbe: { exec: { command: ["true"] }, periodSeconds: -1 },
          env: [{ name: "" }],
        },
      ],
      activeDeadlineSeconds: "0",
      affinity: {
        podAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 0, podAffinityTerm: { topologyKey: "zone" } }],
        },
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: "k", operator: "Equals" }] }],
          },
        },
      },
    };
    expect(paths(PodSchema, { metadata: { name: "p" }, spec }).sort()).toEqual([
      "spec.activeDeadlineSeconds",
      "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator",
      "spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
      "spec.containers[0].env[0].name",
      "spec.containers[0].livenessProbe.periodSeconds",
    ]);
  });

  it("compiles the rules of every message in the API", () => {
    const files: GenFile[] = [
      file_skiff_v1alpha1_meta,
      file_skiff_v1alpha1_pod,
      file_skiff_v1alpha1_node,
      file_skiff_v1alpha1_namespace,
      file_skiff_v1alpha1_replica_set,
      file_skiff_v1alpha1_deployment,
      file_skiff_v1alpha1_service,
      file_skiff_v1alpha1_endpoints,
      file_skiff_v1alpha1_config,
      file_skiff_v1alpha1_storage,
      file_skiff_v1alpha1_coordination,
    ];
    const messages = files.flatMap((f) => f.messages);
    expect(messages.length).toBeGreaterThan(50);
    // an empty message may well violate rules; what must not happen is a rule that fails to compile
    for (const schema of messages) expect(() => ruleViolations(schema, create(schema))).not.toThrow();
  });
});

describe("jsonPath", () => {
  it("writes JSON names, indexes and quoted map keys", () => {
    const metadata = buildPath(PodSchema).field(PodSchema.field.metadata);
    expect(jsonPath(metadata.clone().field(ObjectMetaSchema.field.labels).map("x").toPath())).toBe('metadata.labels["x"]');
    expect(jsonPath(metadata.clone().field(ObjectMetaSchema.field.annotations).map('a"b').toPath())).toBe(
      'metadata.annotations["a\\"b"]',
    );
    const owner = metadata.clone().field(ObjectMetaSchema.field.ownerReferences).list(2);
    expect(jsonPath(owner.field(OwnerReferenceSchema.field.apiVersion).toPath())).toBe("metadata.ownerReferences[2].apiVersion");
  });
});
