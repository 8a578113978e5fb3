// `skiff up`'s snapshot flags are checked before anything starts, each refusal naming its flag.
import { describe, expect, it } from "vitest";
import { upSnapshotOptions } from "./etcd-snapshot.ts";

const base = { "etcd-snapshot-schedule-cron": "0 */12 * * *", "etcd-snapshot-retention": "5", "etcd-disable-snapshots": false, "cluster-reset": false };

describe("skiff up snapshot flags", () => {
  it("schedules by default, not when disabled", () => {
    expect(upSnapshotOptions(base)).toEqual({ cron: "0 */12 * * *", retention: 5 });
    expect(upSnapshotOptions({ ...base, "etcd-disable-snapshots": true })).toBeUndefined();
  });

  it("refuses a bad cron, a bad retention, and a reset without a snapshot or a snapshot without a reset", () => {
    expect(() => upSnapshotOptions({ ...base, "etcd-snapshot-schedule-cron": "every noon" })).toThrow(/--etcd-snapshot-schedule-cron "every noon" is not a cron expression/);
    expect(() => upSnapshotOptions({ ...base, "etcd-snapshot-retention": "0" })).toThrow(/--etcd-snapshot-retention must be a whole number ≥ 1, got "0"/);
    expect(() => upSnapshotOptions({ ...base, "cluster-reset": true })).toThrow(/--cluster-reset needs --cluster-reset-restore-path FILE/);
    expect(() => upSnapshotOptions({ ...base, "cluster-reset-restore-path": "/x" })).toThrow(/--cluster-reset-restore-path needs --cluster-reset/);
  });
});
