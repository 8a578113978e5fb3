// The container logger on its own, started as containerd's shim starts it (query → arguments,
// fd 3 stdout, fd 4 stderr, fd 5 ready): the script is valid perl, rotation keeps the files
// bounded and the output whole and in order, and a failed write reaches the agent's report FIFO.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { parseLogRecord } from "../../log-format.ts";
import { containerLoggerUri, CRI_LOGGER_SCRIPT, type ContainerLogOptions } from "../stdio.ts";
import { createLoggerReports, type LoggerReport } from "./reports.ts";

const dir = mkdtempSync(join(tmpdir(), "skiff-cri-logger-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function startLogger(logPath: string, opts: ContainerLogOptions) {
  const u = new URL(containerLoggerUri(logPath, opts));
  const child = spawn(u.pathname, [...u.searchParams].flat(), { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe", "pipe"], env: {} });
  let stderr = "";
  child.stdio[2]!.on("data", (d: Buffer) => (stderr += d.toString()));
  const fds = child.stdio as unknown as (Readable & Writable)[];
  await new Promise<void>((resolve) => fds[5].on("end", resolve).resume());
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const write = (data: string) => new Promise<void>((resolve) => (fds[3].write(data) ? resolve() : fds[3].once("drain", resolve)));
  return {
    write,
    stderr: () => stderr,
    async finish() {
      fds[3].end();
      fds[4].end();
      await exited;
    },
  };
}

/** The file's lines' contents (every record here is F). */
function contents(path: string): string[] {
  return readFileSync(path, "utf8").split("\n").filter((l) => l !== "").map((l) => Buffer.from(parseLogRecord(Buffer.from(l))!.content).toString());
}

describe("cri-logger.pl", () => {
  it("is valid perl with warnings on, using only modules of perl-base", () => {
    expect(execFileSync("/usr/bin/perl", ["-cw", CRI_LOGGER_SCRIPT], { stdio: "pipe", encoding: "utf8" })).toBe("");
    const modules = [...readFileSync(CRI_LOGGER_SCRIPT, "utf8").matchAll(/^use ([\w:]+)/gm)].map((m) => m[1]);
    expect(modules.sort()).toEqual(["Fcntl", "strict", "warnings"]);
  });

  it("rotates by size: at most max-files files of at most max-size, the newest output whole and in order", async () => {
    const logDir = join(dir, "rotate");
    mkdirSync(logDir);
    const log = join(logDir, "0.log");
    const l = await startLogger(log, { maxSizeBytes: 4096, maxFiles: 3 });
    const lines = Array.from({ length: 3000 }, (_, i) => `line ${i} ${"x".repeat(i % 40)}`);
    for (let i = 0; i < lines.length; i += 100) await l.write(lines.slice(i, i + 100).map((x) => `${x}\n`).join(""));
    await l.finish();
    const files = readdirSync(logDir).sort();
    expect(files).toHaveLength(3);
    expect(files[0]).toBe("0.log"); // the current file, then the rotated ones by name
    const rotated = files.filter((f) => f !== "0.log");
    for (const f of rotated) expect(f).toMatch(/^0\.log\.\d{8}-\d{6}\.\d{9}$/);
    for (const f of files) expect(statSync(join(logDir, f)).size).toBeLessThanOrEqual(4096);
    const kept = [...rotated.map((f) => join(logDir, f)), log].flatMap(contents);
    expect(kept.length).toBeGreaterThan(50);
    expect(kept).toEqual(lines.slice(lines.length - kept.length)); // a contiguous tail: nothing lost, nothing twice
    expect(l.stderr()).toBe("");
  });

  it("reports a failed write to the report FIFO instead of dropping it silently", async () => {
    const got: LoggerReport[] = [];
    const reports = createLoggerReports(join(dir, "reports"), (r) => got.push(r));
    try {
      const log = join(dir, "full.log");
      symlinkSync("/dev/full", log); // every write: ENOSPC
      const l = await startLogger(log, { maxSizeBytes: 1 << 20, maxFiles: 2, reportPath: reports.path });
      await l.write("lost one\nlost two\n");
      for (let i = 0; i < 200 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      await l.finish();
      expect(got).toHaveLength(1);
      expect(got[0].logPath).toBe(log);
      // The records' bytes: each line with its time and tag.
      const m = /^write failed \(No space left on device\): 2 lines \((\d+) bytes\) of output lost so far$/.exec(got[0].message);
      expect(m, got[0].message).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan("lost one\nlost two\n".length);
    } finally {
      reports.close();
    }
  });
});
