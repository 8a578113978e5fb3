import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PodSpecSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { validatePodSpec } from "./validation.ts";

describe("lifecycle hooks in a pod spec", () => {
  it("accepts one action per hook on app containers", () => {
    const spec = create(PodSpecSchema, {
      containers: [{ name: "app", image: "busybox", lifecycle: { preStop: { sleep: { seconds: 5n } }, postStart: { exec: { command: ["true"] } } } }],
    });
    expect(validatePodSpec(spec, "spec")).toEqual([]);
  });

  it("refuses a hook with two actions or none, and hooks on init containers", () => {
    const spec = create(PodSpecSchema, {
      initContainers: [{ name: "init", image: "busybox", lifecycle: { preStop: { sleep: { seconds: 1n } } } }],
      containers: [
        { name: "app", image: "busybox", lifecycle: { preStop: { sleep: { seconds: 1n }, exec: { command: ["true"] } }, postStart: {} } },
      ],
    });
    expect(validatePodSpec(spec, "spec")).toEqual([
      { field: "spec.initContainers[0].lifecycle", message: "may not be set for init containers (except sidecars, restartPolicy: Always)" },
      { field: "spec.containers[0].lifecycle.postStart", message: "must specify exactly one of exec, httpGet or sleep" },
      { field: "spec.containers[0].lifecycle.preStop", message: "must specify exactly one of exec, httpGet or sleep" },
    ]);
  });
});

describe("termination message fields", () => {
  it("refuses a relative terminationMessagePath", () => {
    const spec = create(PodSpecSchema, { containers: [{ name: "app", image: "busybox", terminationMessagePath: "tmp/why" }] });
    expect(validatePodSpec(spec, "spec")).toEqual([{ field: "spec.containers[0].terminationMessagePath", message: "must be an absolute path" }]);
  });
});

describe("sidecar init containers", () => {
  it("takes restartPolicy Always (and hooks) on init containers only", () => {
    const spec = create(PodSpecSchema, {
      initContainers: [{ name: "proxy", image: "busybox", restartPolicy: "Always", lifecycle: { preStop: { sleep: { seconds: 1n } } } }],
      containers: [{ name: "app", image: "busybox", restartPolicy: "Always" }],
    });
    expect(validatePodSpec(spec, "spec")).toEqual([
      { field: "spec.containers[0].restartPolicy", message: "may only be set on init containers (restartPolicy: Always makes a sidecar)" },
    ]);
  });
});
