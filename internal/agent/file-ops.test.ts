import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { asyncFileOps, fileOpsFor, onMemoryFs, SYNC_MAX_BYTES, syncFileOps } from "./file-ops.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("which calls write a pod's files", () => {
  it("tells a memory file system (/dev/shm, a tmpfs on Linux) from others (/proc)", () => {
    expect(onMemoryFs("/dev/shm")).toBe(true);
    expect(onMemoryFs("/proc")).toBe(false);
  });

  it("does not remember a directory asked about before it existed", () => {
    const base = mkdtempSync(join("/dev/shm", "skiff-file-ops-"));
    dirs.push(base);
    const dir = join(base, "data");
    expect(onMemoryFs(dir)).toBe(false);
    mkdirSync(dir);
    expect(onMemoryFs(dir)).toBe(true);
  });

  it("writes synchronously only a small batch on a memory file system; a disk or a large batch keeps the thread pool", () => {
    expect(fileOpsFor(true, 3_000)).toBe(syncFileOps);
    expect(fileOpsFor(true, SYNC_MAX_BYTES + 1)).toBe(asyncFileOps);
    expect(fileOpsFor(false, 100)).toBe(asyncFileOps);
  });

  it.each([
    ["synchronous", syncFileOps],
    ["thread-pool", asyncFileOps],
  ])("%s calls read a file that is there and tell one that is not", async (_how, ops) => {
    const base = mkdtempSync(join("/dev/shm", "skiff-file-ops-"));
    dirs.push(base);
    writeFileSync(join(base, "hosts"), "127.0.0.1\tlocalhost\n");
    expect(await ops.readFileIfExists(join(base, "hosts"))).toBe("127.0.0.1\tlocalhost\n");
    expect(await ops.readFileIfExists(join(base, "missing"))).toBeUndefined();
  });
});
