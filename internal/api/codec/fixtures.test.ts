import { clone, fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DeploymentSchema } from "../../../gen/skiff/v1alpha1/deployment_pb.js";
import { NodeSchema } from "../../../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { PodServiceWatchResponseSchema } from "../../../gen/skiff/v1alpha1/pod_service_pb.js";
import { WatchEventType } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import { create } from "@bufbuild/protobuf";
import { firstDifference } from "./arbitrary.ts";
import { deployment, readyNode, runningPod } from "./fixtures.ts";
import { cloneMessage, codecStats, decodeMessage, encodeMessage } from "./index.ts";

const fixtures: Array<[string, DescMessage, () => any]> = [
  ["a Running Pod", PodSchema, runningPod],
  ["a Ready Node", NodeSchema, readyNode],
  ["a Deployment", DeploymentSchema, deployment],
  ["a Pod watch event", PodServiceWatchResponseSchema, () => create(PodServiceWatchResponseSchema, { type: WatchEventType.MODIFIED, pod: runningPod() })],
];

describe("realistic objects", () => {
  it.each(fixtures)("%s: encoded, decoded and cloned by the compiled code, equal to protobuf-es", (_name, schema, make) => {
    const msg = make();
    const before = { ...codecStats };
    const bytes = encodeMessage(schema, msg);
    expect(Buffer.from(bytes)).toEqual(Buffer.from(toBinary(schema, msg)));
    expect(bytes.length).toBeGreaterThan(300);
    expect(firstDifference(decodeMessage(schema, bytes), fromBinary(schema, bytes))).toBeUndefined();
    expect(firstDifference(cloneMessage(schema, msg), clone(schema, msg))).toBeUndefined();
    expect(codecStats.encodeFallbacks + codecStats.decodeFallbacks + codecStats.cloneFallbacks).toBe(before.encodeFallbacks + before.decodeFallbacks + before.cloneFallbacks);
    expect(codecStats.encoded - before.encoded).toBe(1);
    expect(codecStats.decoded - before.decoded).toBe(1);
    expect(codecStats.cloned - before.cloned).toBe(1);
  });
});
