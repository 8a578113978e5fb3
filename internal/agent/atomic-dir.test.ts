import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeAtomicFiles } from "./atomic-dir.ts";

let dir: string;
beforeEach(() => (dir = join(mkdtempSync(join(tmpdir(), "skiff-atomic-")), "vol")));
afterEach(() => rmSync(join(dir, ".."), { recursive: true, force: true }));
const versions = () => readdirSync(dir).filter((e) => e.startsWith("..") && e !== "..data");

describe("writeAtomicFiles", () => {
  it("writes files with their modes behind ..data, stable names as symlinks, nested paths under their first element", async () => {
    await writeAtomicFiles(dir, [
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

  it("swaps versions, removes names that are gone and old versions, and writes nothing when nothing changed", async () => {
    await writeAtomicFiles(dir, [{ path: "a", data: "1", mode: 0o644 }, { path: "b", data: "1", mode: 0o644 }]);
    const first = versions();
    expect(await writeAtomicFiles(dir, [{ path: "a", data: "1", mode: 0o644 }, { path: "b", data: "1", mode: 0o644 }])).toBe(false);
    expect(versions()).toEqual(first);
    expect(await writeAtomicFiles(dir, [{ path: "a", data: "2", mode: 0o644 }])).toBe(true);
    expect(readFileSync(join(dir, "a"), "utf8")).toBe("2");
    expect(readdirSync(dir).includes("b")).toBe(false);
    expect(versions()).toHaveLength(1);
    expect(versions()).not.toEqual(first);
  });

  it("keeps earlier versions when asked (a subPath mount holds one of their files)", async () => {
    await writeAtomicFiles(dir, [{ path: "a", data: "1", mode: 0o644 }], { keepOldVersions: true });
    await writeAtomicFiles(dir, [{ path: "a", data: "2", mode: 0o644 }], { keepOldVersions: true });
    expect(versions()).toHaveLength(2);
  });

  it("gives every file exactly its mode under a umask that would take bits away", async () => {
    const old = process.umask(0o077);
    try {
      await writeAtomicFiles(dir, [{ path: "token", data: "t", mode: 0o644 }, { path: "conf/x", data: "x", mode: 0o640 }]);
      await writeAtomicFiles(dir, [{ path: "token", data: "u", mode: 0o644 }]);
    } finally {
      process.umask(old);
    }
    expect(statSync(join(dir, "token")).mode & 0o777).toBe(0o644);
    expect(readFileSync(join(dir, "token"), "utf8")).toBe("u");
  });

  it("writes into a directory that already existed (made by someone else, or left by an interrupted write)", async () => {
    mkdirSync(join(dir, "..old"), { recursive: true });
    symlinkSync("..old", join(dir, "..data_tmp"));
    symlinkSync("..data/stale", join(dir, "stale"));
    await writeAtomicFiles(dir, [{ path: "a", data: "1", mode: 0o644 }]);
    expect(readFileSync(join(dir, "a"), "utf8")).toBe("1");
    expect(readdirSync(dir).sort()).toEqual(["..data", versions()[0], "a"].sort());
  });

  it("refuses paths that would leave the directory or hide behind its own names", async () => {
    for (const path of ["../x", "/abs", "..data", "a//b", ""]) {
      await expect(writeAtomicFiles(dir, [{ path, data: "x", mode: 0o644 }])).rejects.toThrow(/bad file path/);
    }
  });
});
