import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync } from "node:fs";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeAtomicFiles, type AtomicFile, type AtomicWriteOptions } from "./atomic-dir.ts";

let dir: string;
beforeEach(() => (dir = join(mkdtempSync(join(tmpdir(), "skiff-atomic-")), "vol")));
afterEach(() => rmSync(join(dir, ".."), { recursive: true, force: true }));
const versions = () => readdirSync(dir).filter((e) => e.startsWith("..") && e !== "..data");

// Reads the directory until its stdin closes, as a container would: both files through one look at
// ..data (they must be of one version), and a file by its stable name (it must be whole).
const READER = `
const fs = require("node:fs"), path = require("node:path");
const dir = process.argv[1], bad = [];
let reads = 0, open = true;
const whole = (t) => /^\\d+:x{100000}$/.test(t);
process.stdin.on("end", () => (open = false)).resume();
function round() {
  for (let i = 0; i < 50; i++) {
    try {
      const byName = fs.readFileSync(path.join(dir, "a"), "utf8");
      if (!whole(byName)) bad.push("stable name: " + byName.length + " bytes");
    } catch (err) {
      bad.push("stable name: " + err.code); // a container must always find its file
    }
    try {
      const v = fs.realpathSync(path.join(dir, "..data"));
      const a = fs.readFileSync(path.join(v, "a"), "utf8"), b = fs.readFileSync(path.join(v, "b"), "utf8");
      if (a !== b || !whole(a)) bad.push("one version: " + a.slice(0, 8) + " / " + b.slice(0, 8));
    } catch (err) {
      if (err.code !== "ENOENT") bad.push(String(err)); // ENOENT: the version went between realpath and read; look again
    }
    if (reads++ === 0) process.stdout.write("ready\\n");
  }
  if (open) setImmediate(round);
  else process.stdout.write(JSON.stringify({ reads, bad: bad.slice(0, 5) }));
}
round();
`;

// Every behaviour holds for both ways of writing: through the thread pool and, on a memory file
// system, with synchronous calls (file-ops.ts).
describe.each([
  ["through the thread pool", false],
  ["with synchronous calls (memory-backed)", true],
])("writeAtomicFiles %s", (_how, memoryBacked) => {
  const writeAtomic = (d: string, files: AtomicFile[], opts: AtomicWriteOptions = {}) => writeAtomicFiles(d, files, { ...opts, memoryBacked });
  it("writes files with their modes behind ..data, stable names as symlinks, nested paths under their first element", async () => {
    await writeAtomic(dir, [
      { path: "a.conf", data: "one", mode: 0o600 },
      { path: "sub/b.txt", data: new TextEncoder().encode("two"), mode: 0o444 },
    ]);
    expect(readlinkSync(join(dir, "a.conf"))).toBe("..data/a.conf");
    expect(readlinkSync(join(dir, "sub"))).toBe("..data/sub");
    expect(lstatSync(join(dir, "..data")).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, "sub", "b.txt"), "utf8")).toBe("two");
    expect(statSync(join(dir, "a.conf")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "sub", "b.txt")).mode & 0o777).toBe(0o444);
  });

  it("swaps versions, removes names that are gone and versions older than the previous one, and writes nothing when nothing changed", async () => {
    await writeAtomic(dir, [{ path: "a", data: "1", mode: 0o644 }, { path: "b", data: "1", mode: 0o644 }]);
    const first = versions();
    expect(await writeAtomic(dir, [{ path: "a", data: "1", mode: 0o644 }, { path: "b", data: "1", mode: 0o644 }])).toBe(false);
    expect(versions()).toEqual(first);
    expect(await writeAtomic(dir, [{ path: "a", data: "2", mode: 0o644 }])).toBe(true);
    expect(readFileSync(join(dir, "a"), "utf8")).toBe("2");
    expect(readdirSync(dir).includes("b")).toBe(false);
    // The previous version stays until the next swap (a reader may be on its way through it).
    expect(versions()).toHaveLength(2);
    expect(versions()).toEqual(expect.arrayContaining(first));
    const second = versions().filter((v) => !first.includes(v));
    expect(await writeAtomic(dir, [{ path: "a", data: "3", mode: 0o644 }])).toBe(true);
    expect(versions()).toHaveLength(2);
    expect(versions()).toEqual(expect.arrayContaining(second));
    expect(versions()).not.toEqual(expect.arrayContaining(first));
  });

  it("with skipUnchanged: false writes the same files anew as a new version, and a later comparing write is not fooled by what it knew before", async () => {
    await writeAtomic(dir, [{ path: "token", data: "A", mode: 0o644 }]);
    const first = versions();
    expect(await writeAtomic(dir, [{ path: "token", data: "A", mode: 0o644 }], { skipUnchanged: false })).toBe(true);
    expect(versions()).toHaveLength(2);
    expect(await writeAtomic(dir, [{ path: "token", data: "B", mode: 0o644 }], { skipUnchanged: false })).toBe(true);
    expect(readFileSync(join(dir, "token"), "utf8")).toBe("B");
    // The directory no longer holds A: a write of A must not be skipped as "unchanged".
    expect(await writeAtomic(dir, [{ path: "token", data: "A", mode: 0o644 }])).toBe(true);
    expect(readFileSync(join(dir, "token"), "utf8")).toBe("A");
    expect(versions()).not.toEqual(expect.arrayContaining(first));
  });

  it("keeps earlier versions when asked (a subPath mount holds one of their files)", async () => {
    await writeAtomic(dir, [{ path: "a", data: "1", mode: 0o644 }], { keepOldVersions: true });
    await writeAtomic(dir, [{ path: "a", data: "2", mode: 0o644 }], { keepOldVersions: true });
    expect(versions()).toHaveLength(2);
  });

  it("gives every file exactly its mode under a umask that would take bits away", async () => {
    const old = process.umask(0o077);
    try {
      await writeAtomic(dir, [{ path: "token", data: "t", mode: 0o644 }, { path: "conf/x", data: "x", mode: 0o640 }]);
      await writeAtomic(dir, [{ path: "token", data: "u", mode: 0o644 }]);
    } finally {
      process.umask(old);
    }
    expect(statSync(join(dir, "token")).mode & 0o777).toBe(0o644);
    expect(readFileSync(join(dir, "token"), "utf8")).toBe("u");
  });

  it("gives every file the pod's fsGroup as its group and its exact mode, at the first write and at an update", async () => {
    const old = process.umask(0o077);
    try {
      await writeAtomic(dir, [{ path: "token", data: "t", mode: 0o640 }, { path: "conf/x", data: "x", mode: 0o440 }], { fsGroup: 4321 });
      for (const [name, mode] of [["token", 0o640], ["conf/x", 0o440]] as const) {
        expect(statSync(join(dir, name)).gid).toBe(4321);
        expect(statSync(join(dir, name)).mode & 0o777).toBe(mode);
      }
      await writeAtomic(dir, [{ path: "token", data: "u", mode: 0o640 }], { fsGroup: 4322 });
    } finally {
      process.umask(old);
    }
    expect(statSync(join(dir, "token")).gid).toBe(4322);
    expect(statSync(join(dir, "token")).mode & 0o777).toBe(0o640);
  });

  it("writes into a directory that already existed (made by someone else, or left by an interrupted write)", async () => {
    mkdirSync(join(dir, "..old"), { recursive: true });
    symlinkSync("..old", join(dir, "..data_tmp"));
    symlinkSync("..data/stale", join(dir, "stale"));
    await writeAtomic(dir, [{ path: "a", data: "1", mode: 0o644 }]);
    expect(readFileSync(join(dir, "a"), "utf8")).toBe("1");
    expect(readdirSync(dir).sort()).toEqual(["..data", versions()[0], "a"].sort());
  });

  it("swaps an update atomically: a reader in another process sees whole files of one version, never a mix or half a file", async () => {
    // Each version: two files of the same 100 KB, both larger than a single write to the page
    // cache would need to be seen half-written.
    const version = (n: number) => `${n}:${"x".repeat(100_000)}`;
    const files = (n: number): AtomicFile[] => [{ path: "a", data: version(n), mode: 0o644 }, { path: "b", data: version(n), mode: 0o644 }];
    await writeAtomic(dir, files(0));
    const reader = spawn(process.execPath, ["-e", READER, dir], { stdio: ["pipe", "pipe", "inherit"] });
    let out = "";
    reader.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    await new Promise<void>((resolve, reject) => {
      reader.stdout.on("data", () => out.includes("ready\n") && resolve());
      reader.on("exit", (code) => reject(new Error(`reader exited (${code}) before it read`)));
    });
    for (let n = 1; n <= 100; n++) {
      expect(await writeAtomic(dir, files(n))).toBe(true);
      await new Promise((r) => setImmediate(r));
    }
    reader.stdin.end();
    await new Promise((r) => reader.on("exit", r));
    const report = JSON.parse(out.slice(out.indexOf("ready\n") + 6)) as { reads: number; bad: string[] };
    expect(report.bad).toEqual([]);
    expect(report.reads).toBeGreaterThan(0);
    expect(readFileSync(join(dir, "a"), "utf8")).toBe(version(100));
  });

  it("refuses paths that would leave the directory or hide behind its own names", async () => {
    for (const path of ["../x", "/abs", "..data", "a//b", ""]) {
      await expect(writeAtomic(dir, [{ path, data: "x", mode: 0o644 }])).rejects.toThrow(/bad file path/);
    }
  });
});
