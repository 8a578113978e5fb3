import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { diskUsage, filesystemFigures, memoryCgroupDir, memoryFigures } from "./observe.ts";

const Ki = 1024n;
const MEMINFO = "MemTotal:        8000000 kB\nMemFree:          100000 kB\nMemAvailable:    3000000 kB\n";
let dirs: string[] = [];
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), "skiff-observe-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

describe("memoryFigures", () => {
  it("cgroup v1: MemTotal minus the root cgroup's working set (usage − inactive file pages)", () => {
    const root = temp();
    mkdirSync(join(root, "memory"));
    writeFileSync(join(root, "memory", "memory.usage_in_bytes"), `${6_000_000n * Ki}\n`);
    writeFileSync(join(root, "memory", "memory.stat"), `cache 1\ntotal_inactive_file ${1_000_000n * Ki}\n`);
    expect(memoryFigures({ meminfo: MEMINFO, cgroupRoot: root })).toEqual({ capacity: 8_000_000n * Ki, available: 3_000_000n * Ki });
  });

  it("cgroup v2: MemAvailable of /proc/meminfo", () => {
    const root = temp();
    writeFileSync(join(root, "cgroup.controllers"), "cpu memory pids\n");
    expect(memoryFigures({ meminfo: MEMINFO, cgroupRoot: root })).toEqual({ capacity: 8_000_000n * Ki, available: 3_000_000n * Ki });
  });

  it("reads this machine's figures (something available, below the total)", () => {
    const m = memoryFigures();
    expect(m.capacity).toBeGreaterThan(0n);
    expect(m.available).toBeGreaterThan(0n);
    expect(m.available).toBeLessThanOrEqual(m.capacity);
  });
});

describe("memoryCgroupDir", () => {
  it("finds the memory controller's path on v1 and the unified path on v2", () => {
    expect(memoryCgroupDir("12:pids:/skiff/abc\n4:memory:/skiff/abc\n0::/", "/cg")).toBe("/cg/memory/skiff/abc");
    expect(memoryCgroupDir("0::/skiff/abc\n", "/cg")).toBe("/cg/skiff/abc");
    expect(memoryCgroupDir("", "/cg")).toBeUndefined();
  });
});

describe("filesystem figures", () => {
  it("statfs of a directory: available at most the capacity, inodes too", async () => {
    const f = await filesystemFigures(temp());
    expect(f.bytes.capacity).toBeGreaterThan(0n);
    expect(f.bytes.available).toBeLessThanOrEqual(f.bytes.capacity);
    expect(f.inodes.available).toBeLessThanOrEqual(f.inodes.capacity);
  });

  it("diskUsage counts the blocks of the files under a directory", async () => {
    const d = temp();
    mkdirSync(join(d, "sub"));
    writeFileSync(join(d, "sub", "big"), Buffer.alloc(256 * 1024, 1));
    expect(await diskUsage(d)).toBeGreaterThanOrEqual(256n * Ki);
    expect(await diskUsage(join(d, "missing"))).toBe(0n);
  });
});
