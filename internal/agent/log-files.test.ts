// Reading a container's log across rotated files (log-files.ts through logs.ts's streamLogFile):
// the files written by hand for --tail and since, the real logger rotating under a follower.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { formatLogRecord } from "../runtime/log-format.ts";
import { containerLoggerUri } from "../runtime/containerd/stdio.ts";
import { rotatedLogFiles } from "./log-files.ts";
import { streamLogFile, type StreamOptions } from "./logs.ts";

const dir = mkdtempSync(join(tmpdir(), "skiff-log-files-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const never = new AbortController().signal;
const opts = (o: Partial<StreamOptions> = {}): StreamOptions => ({ follow: false, stillWriting: async () => false, signal: never, pollMs: 5, ...o });

async function read(path: string, o: Partial<StreamOptions> = {}): Promise<string> {
  let out = "";
  for await (const chunk of streamLogFile(path, opts(o))) out += Buffer.from(chunk).toString();
  return out;
}

const rec = (time: string, full: boolean, text: string) => formatLogRecord(time, "stdout", full, text);

describe("a rotated container log", () => {
  const logDir = join(dir, "by-hand");
  const log = join(logDir, "0.log");
  mkdirSync(logDir);
  // Oldest first; the line "d…" starts in one file (P) and ends in the next (F).
  writeFileSync(`${log}.20260101-000000.000000001`, Buffer.concat([rec("2026-01-01T00:00:00Z", true, "a"), rec("2026-01-01T00:00:00Z", true, "b")]));
  writeFileSync(`${log}.20260101-000100.000000002`, Buffer.concat([rec("2026-01-01T00:01:00Z", true, "c"), rec("2026-01-01T00:01:00Z", false, "d-start ")]));
  writeFileSync(log, Buffer.concat([rec("2026-01-01T00:01:00Z", true, "d-end"), rec("2026-01-01T00:02:00Z", true, "e")]));
  writeFileSync(`${log}.20260101-000200.000000003.gz`, "not one of ours: another suffix");

  it("lists the rotated files in time order", async () => {
    expect(await rotatedLogFiles(log)).toEqual([`${log}.20260101-000000.000000001`, `${log}.20260101-000100.000000002`]);
  });

  it("serves every file in order, --tail across a boundary, and --since over all of them", async () => {
    expect(await read(log)).toBe("a\nb\nc\nd-start d-end\ne\n");
    expect(await read(log, { tailLines: 2 })).toBe("d-start d-end\ne\n");
    expect(await read(log, { tailLines: 4 })).toBe("b\nc\nd-start d-end\ne\n");
    expect(await read(log, { tailLines: 100 })).toBe("a\nb\nc\nd-start d-end\ne\n");
    expect(await read(log, { tailLines: 0 })).toBe("");
    expect(await read(log, { sinceNs: BigInt(Date.parse("2026-01-01T00:00:30Z")) * 1_000_000n })).toBe("c\nd-start d-end\ne\n");
  });
});

describe("following a log the real logger rotates", () => {
  it("sees every line written after it started, in order, none lost or twice, across rotations", async () => {
    const logDir = join(dir, "follow");
    mkdirSync(logDir);
    const log = join(logDir, "0.log");
    const u = new URL(containerLoggerUri(log, { maxSizeBytes: 2048, maxFiles: 3 }));
    const child = spawn(u.pathname, [...u.searchParams].flat(), { stdio: ["ignore", "ignore", "inherit", "pipe", "pipe", "pipe"] });
    const fds = child.stdio as unknown as (Readable & Writable)[];
    await new Promise<void>((resolve) => fds[5].on("end", resolve).resume());
    const exited = new Promise((resolve) => child.on("exit", resolve));
    let writing = true;
    let seen = "";
    const follower = (async () => {
      for await (const chunk of streamLogFile(log, opts({ follow: true, stillWriting: async () => writing }))) seen += Buffer.from(chunk).toString();
    })();
    const lines: string[] = [];
    // Batches smaller than a file, each waited for: the follower is never more than a rotation behind.
    for (let batch = 0; batch < 60; batch++) {
      const text = Array.from({ length: 10 }, (_, i) => `batch ${batch} line ${i}\n`).join("");
      lines.push(text);
      fds[3].write(text);
      const want = lines.join("");
      for (let i = 0; i < 1000 && seen.length < want.length; i++) await new Promise((r) => setTimeout(r, 5));
    }
    fds[3].end();
    fds[4].end();
    await exited;
    writing = false;
    await follower;
    expect(seen).toBe(lines.join(""));
    expect((await rotatedLogFiles(log)).length).toBe(2); // it did rotate, many times over
  });
});
