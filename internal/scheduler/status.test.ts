import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ConditionSchema } from "../../gen/skiff/v1alpha1/meta_pb.js";
import { makePod } from "./core/testing.ts";
import { withUnschedulableCondition } from "./status.ts";

describe("PodScheduled=False", () => {
  it("is written with reason Unschedulable and the message, replacing an older PodScheduled", () => {
    const pod = makePod("p");
    pod.status!.conditions = [create(ConditionSchema, { type: "Initialized", status: "True" })];
    const next = withUnschedulableCondition(pod, "0/1 nodes are available: 1 Insufficient cpu.")!;
    expect(next.status!.conditions.map((c) => [c.type, c.status, c.reason, c.message])).toEqual([
      ["Initialized", "True", "", ""],
      ["PodScheduled", "False", "Unschedulable", "0/1 nodes are available: 1 Insufficient cpu."],
    ]);
    expect(pod.status!.conditions).toHaveLength(1); // the informer's copy is left alone
  });

  it("is not written again when it already says the same; a new message keeps the transition time", () => {
    const first = withUnschedulableCondition(makePod("p"), "a")!;
    expect(withUnschedulableCondition(first, "a")).toBeUndefined();
    const since = first.status!.conditions[0].lastTransitionTime;
    const second = withUnschedulableCondition(first, "b")!;
    expect(second.status!.conditions[0].message).toBe("b");
    expect(second.status!.conditions[0].lastTransitionTime).toEqual(since);
  });
});
