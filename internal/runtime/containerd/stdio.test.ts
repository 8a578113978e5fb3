import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { loggerUri } from "./stdio.ts";

const dir = mkdtempSync(join(tmpdir(), "skiff-stdio-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the logger as containerd's shim does: query → args, fd 3 stdout, fd 4 stderr, fd 5 ready. */
async function runLogger(uri: string, out: string, err: string): Promise<void> {
  const u = new URL(uri);
  expect(u.protocol).toBe("binary:");
  const args = [...u.searchParams].flat();
  const child = spawn(u.pathname, args, { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe", "pipe"], env: {} });
  const fds = child.stdio as unknown as (Readable & Writable)[];
  await new Promise<void>((resolve) => fds[5].on("end", resolve).resume()); // closed when ready
  fds[3].end(out);
  fds[4].end(err);
  child.kill("SIGTERM"); // the shim does this on delete: the logger must still flush
  await new Promise((resolve) => child.on("exit", resolve));
}

describe("loggerUri", () => {
  it("appends both streams to one file", async () => {
    const log = join(dir, "it's one.log");
    await runLogger(loggerUri(log), "out\n", "err\n");
    expect(readFileSync(log, "utf8").split("\n").sort()).toEqual(["", "err", "out"]);
  });

  it("or to two files", async () => {
    const [o, e] = [join(dir, "o"), join(dir, "e")];
    await runLogger(loggerUri(o, e), "x".repeat(200_000), "y");
    expect(readFileSync(o, "utf8")).toHaveLength(200_000);
    expect(readFileSync(e, "utf8")).toBe("y");
  });
});
