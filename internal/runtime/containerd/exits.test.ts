// Exits recorded on container records: what is recorded when, and how a record reads back with a
// task, without one, and with its task gone.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ContainerSchema, type Container } from "../../../gen/containerd/services/containers/v1/containers_pb.js";
import { ProcessSchema, Status, type Process } from "../../../gen/containerd/types/task/task_pb.js";
import { containerInfo, LABELS } from "./containers.ts";
import { exitLabels, exitToRecord, LOST_EXIT_CODE, recordedExit } from "./exits.ts";

const NOW = new Date("2026-01-02T03:04:05.000Z");
const STARTED = "2026-01-02T03:00:00.000Z";

function record(labels: Record<string, string> = {}): Container {
  return create(ContainerSchema, { id: "c1", labels: { [LABELS.podUid]: "u", [LABELS.containerName]: "app", [LABELS.attempt]: "2", ...labels } });
}
const task = (status: Status, extra: MessageInitShape<typeof ProcessSchema> = {}): Process => create(ProcessSchema, { id: "c1", status, pid: 42, ...extra });
const never = () => false;

describe("exitToRecord", () => {
  it("records a stopped task's exit code, time and OOM kill", () => {
    const t = task(Status.STOPPED, { exitStatus: 137, exitedAt: { seconds: 1767323000n, nanos: 5_000_000 } });
    expect(exitToRecord(record({ [LABELS.startedAt]: STARTED }), t, () => true, NOW)).toEqual({
      exitCode: 137,
      finishedAt: new Date(1767323000005),
      oomKilled: true,
      lost: false,
    });
  });

  it("records a started container whose task is gone as lost (255, now)", () => {
    expect(exitToRecord(record({ [LABELS.startedAt]: STARTED }), "gone", never, NOW)).toEqual({ exitCode: LOST_EXIT_CODE, finishedAt: NOW, oomKilled: false, lost: true });
  });

  it("records nothing for a running task, an unreadable one, a never started one, or one already recorded", () => {
    const started = record({ [LABELS.startedAt]: STARTED });
    expect(exitToRecord(started, task(Status.RUNNING), never, NOW)).toBeUndefined();
    expect(exitToRecord(started, undefined, never, NOW)).toBeUndefined();
    expect(exitToRecord(record(), "gone", never, NOW)).toBeUndefined();
    const recorded = record({ [LABELS.startedAt]: STARTED, ...exitLabels({ exitCode: 1, finishedAt: NOW, oomKilled: false, lost: false }) });
    expect(exitToRecord(recorded, "gone", never, NOW)).toBeUndefined();
  });
});

describe("containerInfo with recorded exits", () => {
  const lostLabels = exitLabels({ exitCode: LOST_EXIT_CODE, finishedAt: NOW, oomKilled: false, lost: true });

  it("reads a recorded exit back once the task is gone (a reboot)", () => {
    const c = record({ [LABELS.startedAt]: STARTED, ...exitLabels({ exitCode: 0, finishedAt: NOW, oomKilled: false, lost: false }) });
    expect(recordedExit(c)).toEqual({ exitCode: 0, finishedAt: NOW, oomKilled: false, lost: false });
    const info = containerInfo(c, "gone", false);
    expect([info.state, info.exitCode, info.finishedAt, info.lost, info.attempt]).toEqual(["exited", 0, NOW, undefined, 2]);
  });

  it("reports a lost container as exited 255, lost", () => {
    const info = containerInfo(record({ [LABELS.startedAt]: STARTED, ...lostLabels }), undefined, false);
    expect([info.state, info.exitCode, info.lost, info.startedAt]).toEqual(["exited", 255, true, new Date(STARTED)]);
  });

  it("a never started container whose task is gone is 'created' (its attempt is started afresh); an unreadable one 'unknown'", () => {
    expect(containerInfo(record(), "gone", false).state).toBe("created");
    expect(containerInfo(record({ [LABELS.startedAt]: STARTED }), undefined, false).state).toBe("unknown");
  });

  it("a running task is running, with its pid", () => {
    const info = containerInfo(record({ [LABELS.startedAt]: STARTED }), task(Status.RUNNING), false);
    expect([info.state, info.pid]).toEqual(["running", 42]);
  });
});
