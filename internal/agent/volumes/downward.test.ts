import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PodSchema, ResourceFieldSelectorSchema } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { formatMap, resourceFieldValue, volumeFieldValue } from "./downward.ts";

const pod = create(PodSchema, {
  metadata: { name: "p", namespace: "ns", uid: "u-1", labels: { b: "2", a: 'say "hi"' }, annotations: { note: "n" } },
  spec: {
    containers: [
      { name: "app", resources: { limits: { cpu: "250m", memory: "100Mi" }, requests: { cpu: "100m" } } },
      { name: "side" },
    ],
  },
});
const sel = (resource: string, divisor = "", containerName = "app") => create(ResourceFieldSelectorSchema, { resource, divisor, containerName });
const node = { cpu: "4", memory: "8Gi" };

describe("downward API values", () => {
  it("writes labels and annotations as sorted key=\"value\" lines, one label by its key", () => {
    expect(formatMap(pod.metadata!.labels)).toBe('a="say \\"hi\\""\nb="2"');
    expect(volumeFieldValue(pod, "metadata.labels")).toBe('a="say \\"hi\\""\nb="2"');
    expect(volumeFieldValue(pod, "metadata.labels['b']")).toBe("2");
    expect(volumeFieldValue(pod, "metadata.annotations")).toBe('note="n"');
    expect(volumeFieldValue(pod, "metadata.uid")).toBe("u-1");
    expect(() => volumeFieldValue(pod, "status.podIP")).toThrow(/unsupported/);
  });

  it("divides resources by the divisor rounding up, and uses the node's allocatable for a missing limit", () => {
    expect(resourceFieldValue(pod, sel("limits.cpu"), node)).toBe("1"); // 250m rounds up to 1 core
    expect(resourceFieldValue(pod, sel("limits.cpu", "1m"), node)).toBe("250");
    expect(resourceFieldValue(pod, sel("requests.cpu", "1m"), node)).toBe("100");
    expect(resourceFieldValue(pod, sel("limits.memory", "1Mi"), node)).toBe("100");
    expect(resourceFieldValue(pod, sel("limits.memory", "1Gi", "side"), node)).toBe("8");
    expect(resourceFieldValue(pod, sel("limits.cpu", "", ""), node, "side")).toBe("4");
    expect(() => resourceFieldValue(pod, sel("limits.cpu", "", "nope"), node)).toThrow(/no container "nope"/);
  });
});
