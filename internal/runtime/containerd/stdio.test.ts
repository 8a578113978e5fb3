import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { MAX_LOG_LINE, parseLogRecord, type LogRecord } from "../log-format.ts";
import { containerLoggerUri, rawLoggerUri } from "./stdio.ts";

const dir = mkdtempSync(join(tmpdir(), "skiff-stdio-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Logger {
  child: ChildProcess;
  out: Writable;
  err: Writable;
  /** The shim's delete: SIGTERM, then wait; the logger must still write everything. */
  finish(): Promise<void>;
}

/** Starts the logger as containerd's shim does: query → args, fd 3 stdout, fd 4 stderr, fd 5 ready. */
async function startLogger(uri: string): Promise<Logger> {
  const u = new URL(uri);
  expect(u.protocol).toBe("binary:");
  const args = [...u.searchParams].flat();
  const child = spawn(u.pathname, args, { stdio: ["ignore", "ignore", "inherit", "pipe", "pipe", "pipe"], env: {} });
  const fds = child.stdio as unknown as (Readable & Writable)[];
  await new Promise<void>((resolve) => fds[5].on("end", resolve).resume()); // closed when ready
  for (const fd of [3, 4]) fds[fd].on("error", () => {}); // a logger that died fails the test on its file
  const exited = new Promise((resolve) => child.on("exit", resolve));
  return {
    child,
    out: fds[3],
    err: fds[4],
    async finish() {
      fds[3].end();
      fds[4].end();
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function runLogger(uri: string, out: string, err: string): Promise<void> {
  const l = await startLogger(uri);
  l.out.write(out);
  l.err.write(err);
  await l.finish();
}

function records(path: string): LogRecord[] {
  const text = readFileSync(path);
  const lines: Buffer[] = [];
  for (let at = 0; at < text.length; ) {
    const nl = text.indexOf(0x0a, at);
    expect(nl, "every record ends with a newline").toBeGreaterThanOrEqual(0);
    lines.push(text.subarray(at, nl));
    at = nl + 1;
  }
  return lines.map((line) => {
    const r = parseLogRecord(line);
    expect(r, `a CRI record: ${line.toString().slice(0, 80)}`).toBeDefined();
    return r!;
  });
}

const text = (r: LogRecord) => `${r.stream} ${r.full ? "F" : "P"} ${Buffer.from(r.content).toString()}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("containerLoggerUri", () => {
  it("writes both streams to one file in the CRI format, stamped with the time read", async () => {
    const log = join(dir, "it's a \\ log");
    const before = BigInt(Date.now()) * 1_000_000n;
    const l = await startLogger(containerLoggerUri(log));
    expect(readFileSync(`/proc/${l.child.pid}/cmdline`, "utf8")).toContain(dir); // ps shows whose logger it is
    l.out.write("first\nsecond\n");
    await sleep(150);
    l.err.write("oops\n");
    await sleep(150);
    l.out.write("\nthird\n");
    await l.finish();
    const after = BigInt(Date.now()) * 1_000_000n;
    const got = records(log);
    expect(got.map(text)).toEqual(["stdout F first", "stdout F second", "stderr F oops", "stdout F ", "stdout F third"]);
    for (const r of got) {
      expect(r.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/);
      expect(r.timeNs).toBeGreaterThanOrEqual(before - 1_000_000n); // the clocks' resolution differ
      expect(r.timeNs).toBeLessThanOrEqual(after + 1_000_000n);
    }
    // Sub-second times, in the order written: the stderr line came >= 150 ms after the first two.
    expect(got[2].timeNs - got[0].timeNs).toBeGreaterThanOrEqual(100_000_000n);
    expect(got[4].timeNs).toBeGreaterThan(got[2].timeNs);
  });

  it("cuts long lines into P records and keeps every byte", async () => {
    const log = join(dir, "long.log");
    const long = "x".repeat(MAX_LOG_LINE * 2 + 100);
    const exact = "y".repeat(MAX_LOG_LINE);
    await runLogger(containerLoggerUri(log), `${long}\n${exact}\nno newline at the end`, "");
    const got = records(log);
    expect(got.map((r) => [r.full, r.content.length])).toEqual([
      [false, MAX_LOG_LINE],
      [false, MAX_LOG_LINE],
      [true, 100],
      [true, MAX_LOG_LINE],
      [false, "no newline at the end".length],
    ]);
    expect(Buffer.concat(got.map((r) => (r.full ? Buffer.concat([r.content, Buffer.from("\n")]) : r.content))).toString()).toBe(
      `${long}\n${exact}\nno newline at the end`,
    );
  });

  it("writes an unfinished line after a quiet while (a prompt shows up in a followed log)", async () => {
    const log = join(dir, "prompt.log");
    const l = await startLogger(containerLoggerUri(log));
    l.out.write("Password: ");
    await sleep(1200);
    const shown = records(log).map(text);
    l.out.write("ok\n");
    await l.finish();
    expect(shown).toEqual(["stdout P Password: "]);
    expect(records(log).map(text)).toEqual(["stdout P Password: ", "stdout F ok"]);
  });

  it("keeps a line written in pieces whole, and loses nothing after SIGTERM", async () => {
    const log = join(dir, "pieces.log");
    const l = await startLogger(containerLoggerUri(log));
    l.out.write("hel");
    l.child.kill("SIGTERM"); // ignored: the logger ends when the pipes close
    await sleep(50);
    l.out.write("lo\n");
    l.err.write("last words");
    await l.finish();
    expect(records(log).map(text)).toEqual(["stdout F hello", "stderr P last words"]);
  });
});

describe("rawLoggerUri", () => {
  it("appends each stream, byte for byte, to its file", async () => {
    const [o, e] = [join(dir, "o"), join(dir, "e")];
    await runLogger(rawLoggerUri(o, e), "x".repeat(200_000), "y");
    expect(readFileSync(o, "utf8")).toHaveLength(200_000);
    expect(readFileSync(e, "utf8")).toBe("y");
  });
});
