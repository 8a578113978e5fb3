import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { TaintSchema, type Taint } from "../../../gen/skiff/v1alpha1/node_pb.js";
import { ConditionSchema } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import { evictionDeadline, reconcileConditionTaints, reconcileTaints, TAINT_NOT_READY, TAINT_UNREACHABLE, tolerates, tolerationMs } from "./taints.ts";
import { testPod } from "./testing.ts";

const taint = (key: string, effect: string, addedMs = 1000, value = "") => create(TaintSchema, { key, effect, value, timeAdded: timestampFromMs(addedMs) });
const keys = (ts: Taint[]) => ts.map((t) => `${t.key}:${t.effect}`);

describe("reconcileTaints", () => {
  const other = taint("example.com/gpu", "NoSchedule");
  it("adds NoSchedule and NoExecute of the wanted key, keeps others", () => {
    const out = reconcileTaints([other], "Unreachable", 5000);
    expect(keys(out)).toEqual(["example.com/gpu:NoSchedule", `${TAINT_UNREACHABLE}:NoSchedule`, `${TAINT_UNREACHABLE}:NoExecute`]);
    expect(Number(out[2].timeAdded!.seconds)).toBe(5);
  });
  it("swaps not-ready for unreachable and removes both when healthy", () => {
    const nr = [taint(TAINT_NOT_READY, "NoSchedule"), taint(TAINT_NOT_READY, "NoExecute"), other];
    expect(keys(reconcileTaints(nr, "Unreachable", 5000))).toEqual(["example.com/gpu:NoSchedule", `${TAINT_UNREACHABLE}:NoSchedule`, `${TAINT_UNREACHABLE}:NoExecute`]);
    expect(keys(reconcileTaints(nr, "Healthy", 5000))).toEqual(["example.com/gpu:NoSchedule"]);
  });
  it("returns the same array when nothing changes (timeAdded kept)", () => {
    const ts = [taint(TAINT_UNREACHABLE, "NoExecute"), taint(TAINT_UNREACHABLE, "NoSchedule")];
    expect(reconcileTaints(ts, "Unreachable", 99_000)).toBe(ts);
    expect(reconcileTaints([other], "Healthy", 0)).toEqual([other]);
  });
});

describe("reconcileConditionTaints", () => {
  const cond = (type: string, status: string) => create(ConditionSchema, { type, status });
  const other = create(TaintSchema, { key: "dedicated", value: "db", effect: "NoSchedule" });

  it("adds a NoSchedule taint per pressure condition that is True and removes it when it is not", () => {
    const tainted = reconcileConditionTaints([other], [cond("Ready", "True"), cond("DiskPressure", "True"), cond("MemoryPressure", "False")], 7000);
    expect(tainted.map((t) => `${t.key}:${t.effect}`)).toEqual(["dedicated:NoSchedule", "node.kubernetes.io/disk-pressure:NoSchedule"]);
    expect(tainted[1].timeAdded).toEqual(timestampFromMs(7000));
    // Unchanged: the same array (no write).
    expect(reconcileConditionTaints(tainted, [cond("DiskPressure", "True")], 9000)).toBe(tainted);
    // Unknown (an unreachable node) is not True.
    expect(reconcileConditionTaints(tainted, [cond("DiskPressure", "Unknown")], 9000).map((t) => t.key)).toEqual(["dedicated"]);
  });
});

describe("tolerations", () => {
  const t = taint(TAINT_UNREACHABLE, "NoExecute", 10_000);
  it("match like Kubernetes", () => {
    const tol = (o: object) => ({ key: "", operator: "", value: "", effect: "", ...o }) as any;
    expect(tolerates(tol({ operator: "Exists" }), t)).toBe(true);
    expect(tolerates(tol({ key: TAINT_UNREACHABLE, operator: "Exists", effect: "NoExecute" }), t)).toBe(true);
    expect(tolerates(tol({ key: TAINT_UNREACHABLE, operator: "Exists", effect: "NoSchedule" }), t)).toBe(false);
    expect(tolerates(tol({ key: TAINT_UNREACHABLE, value: "" }), t)).toBe(true);
    expect(tolerates(tol({ key: TAINT_UNREACHABLE, value: "x" }), t)).toBe(false);
    expect(tolerates(tol({ key: "" }), t)).toBe(false);
    expect(tolerates(tol({ key: TAINT_NOT_READY, operator: "Exists" }), t)).toBe(false);
  });
  it("gives the smallest tolerationSeconds, forever without one, the default without a match", () => {
    const seconds = (s?: number) => ({ key: TAINT_UNREACHABLE, operator: "Exists", effect: "NoExecute", tolerationSeconds: s === undefined ? undefined : BigInt(s) });
    expect(tolerationMs(testPod("p"), t, 300_000)).toBe(300_000);
    expect(tolerationMs(testPod("p", { tolerations: [seconds(60), seconds(5)] }), t, 300_000)).toBe(5000);
    expect(tolerationMs(testPod("p", { tolerations: [seconds(60), seconds()] }), t, 300_000)).toBe(Infinity);
    expect(tolerationMs(testPod("p", { tolerations: [seconds(-3)] }), t, 300_000)).toBe(0);
    expect(evictionDeadline(testPod("p", { tolerations: [seconds(2)] }), t, 300_000, 0)).toBe(12_000);
  });
});
