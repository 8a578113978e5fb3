// A container's logger on a full filesystem, on real containerd + runc: the log directory is a
// small tmpfs this test mounts (and unmounts). While the disk is full the logger reports the
// failed writes to the report FIFO (the agent turns them into warnings) instead of dropping the
// output silently; once there is room again it reports that, and the log itself says how many
// lines were lost. The agent's handler turns the reports into Warning events on the pod.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLoggerReports, type LoggerReport, type LoggerReports } from "../../internal/runtime/containerd/logger/reports.ts";
import { createContainerdRuntime, type ContainerdRuntime } from "../../internal/runtime/containerd/runtime.ts";
import { waitFor } from "../../internal/agent/testing.ts";
import { createLoggerReportHandler, LOG_WRITE_FAILED, LOG_WRITE_RECOVERED } from "../../internal/agent/logger-reports.ts";
import type { EventRecorder } from "../../internal/client/events.ts";
import pino from "pino";
import { startContainerd, type ContainerdServer } from "../harness/containerd.ts";
import { buildBusyboxImage, type BuiltImage } from "../harness/images.ts";
import { makeTempDir, removeTempDir } from "../harness/tmp.ts";

let server: ContainerdServer;
let rt: ContainerdRuntime;
let dir: string;
let image: BuiltImage;
let reports: LoggerReports;
let mounted = false;
const got: LoggerReport[] = [];
const events: { uid?: string; name?: string; reason: string; message: string }[] = [];
/** Records what the agent's event recorder would write. */
const recorder: EventRecorder = {
  event: (obj, _type, reason, message) => void events.push({ uid: obj.metadata?.uid, name: obj.metadata?.name, reason, message }),
  flush: async () => {},
};

beforeAll(async () => {
  server = await startContainerd();
  dir = makeTempDir("skiff-log-full-disk-");
  image = await buildBusyboxImage(join(dir, "image"), { name: "skiff.test/busybox", tag: "v1", indexHtml: "hi\n" });
  rt = createContainerdRuntime({ address: server.address, namespace: server.namespace, containerLog: { maxSizeBytes: 1 << 20, maxFiles: 2, reportPath: join(dir, "logger-reports") } });
  const handle = createLoggerReportHandler({ runtime: rt, recorder, log: pino({ level: "silent" }) });
  reports = createLoggerReports(join(dir, "logger-reports"), (r) => {
    got.push(r);
    void handle(r);
  });
  await rt.importImage(image.tarPath);
  mkdirSync(join(dir, "logs"));
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k", "skiff-test-logs", join(dir, "logs")]);
  mounted = true;
}, 120_000);

afterAll(async () => {
  for (const c of (await rt?.listContainers().catch(() => [])) ?? []) await rt.removeContainer(c.id).catch(() => undefined);
  await rt?.close();
  reports?.close();
  await server?.stop();
  if (mounted) execFileSync("umount", [join(dir, "logs")]);
  if (dir) removeTempDir(dir);
}, 120_000);

/** Fills the filesystem at `path` up to the last byte. */
function fill(path: string): void {
  const chunk = Buffer.alloc(4096, "f");
  try {
    for (let i = 0; ; i++) writeFileSync(path, chunk, { flag: "a" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  }
}

describe("container logger on a full filesystem", () => {
  it("reports failed writes, then writing again, and marks the lost lines in the log", async () => {
    const logPath = join(dir, "logs", "app", "0.log");
    const id = await rt.createContainer({
      podUid: "uid-full",
      podName: "full",
      podNamespace: "default",
      containerName: "app",
      attempt: 0,
      image: image.ref,
      command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"],
      args: [],
      env: [],
      workingDir: "",
      mounts: [],
      resources: {},
      netnsPath: "",
      hostname: "full",
      logPath,
    });
    await rt.startContainer(id);
    await waitFor("the first ticks in the log", () => readFileSync(logPath, "utf8").includes("tick 1\n"));
    const filler = join(dir, "logs", "filler");
    fill(filler);

    const failed = await waitFor("a report of the failed write", () => got.find((r) => r.message.startsWith("write failed")), 15_000);
    expect(failed.logPath).toBe(logPath);
    expect(failed.message).toMatch(/^write failed \(No space left on device\): \d+ lines \(\d+ bytes\) of output lost so far$/);

    rmSync(filler);
    const again = await waitFor("a report of writing again", () => got.find((r) => r.message.startsWith("writing again")), 15_000);
    const lost = Number(/; (\d+) lines \(\d+ bytes\) were lost: No space left on device$/.exec(again.message)?.[1]);
    expect(lost).toBeGreaterThan(0);
    // The log says so too, where the gap is: the ticks before and after it are whole records.
    await waitFor("the marker in the log", () => readFileSync(logPath, "utf8").includes("output lost: No space left on device]"));
    const text = readFileSync(logPath, "utf8");
    expect(text).toMatch(new RegExp(`^\\S+Z stderr F \\[skiff logger: ${lost} lines \\(\\d+ bytes\\) of output lost: No space left on device\\]$`, "m"));
    for (const l of text.split("\n").slice(0, -1)) expect(l).toMatch(/^\S+Z (stdout F tick \d+|stderr F \[skiff logger: .*\])$/);
    const ticks = [...text.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
    const gap = ticks.findIndex((t, i) => i > 0 && t !== ticks[i - 1] + 1);
    expect(ticks[gap] - ticks[gap - 1] - 1).toBe(lost); // exactly the lines reported lost are missing

    // The agent's handler: a Warning event on the pod for each report.
    await waitFor("the events", () => events.some((e) => e.reason === LOG_WRITE_RECOVERED));
    expect(events[0]).toEqual({ uid: "uid-full", name: "full", reason: LOG_WRITE_FAILED, message: `container app: ${failed.message}` });
    expect(events.at(-1)).toEqual({ uid: "uid-full", name: "full", reason: LOG_WRITE_RECOVERED, message: `container app: ${again.message}` });
  }, 120_000);
});
