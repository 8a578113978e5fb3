import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pinSubPath, resolveSubPath } from "./subpath.ts";

let dir: string;
let vol: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "skiff-subpath-"));
  vol = join(dir, "vol");
  mkdirSync(vol);
});
afterEach(() => {
  for (const m of ["pins/dir", "pins/file"]) {
    try {
      execFileSync("umount", ["-l", join(dir, m)], { stdio: "ignore" });
    } catch {
      // not mounted
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("resolveSubPath", () => {
  it("makes a missing path as a directory inside the volume", () => {
    const p = resolveSubPath(vol, "a/b");
    expect(p).toBe(join(vol, "a", "b"));
    expect(statSync(p).isDirectory()).toBe(true);
  });

  it("follows symlinks that stay inside the volume (a configMap key through ..data) to the real file", () => {
    mkdirSync(join(vol, "..2026_v1"));
    writeFileSync(join(vol, "..2026_v1", "app.conf"), "x");
    symlinkSync("..2026_v1", join(vol, "..data"));
    symlinkSync("..data/app.conf", join(vol, "app.conf"));
    expect(resolveSubPath(vol, "app.conf")).toBe(join(vol, "..2026_v1", "app.conf"));
  });

  it("refuses symlinks leading out of the volume, also in the middle of the path, and makes nothing outside", () => {
    mkdirSync(join(dir, "outside"));
    symlinkSync(join(dir, "outside"), join(vol, "out"));
    symlinkSync("/", join(vol, "root"));
    expect(() => resolveSubPath(vol, "root")).toThrow(/leads outside the volume/);
    expect(() => resolveSubPath(vol, "out/new/dir")).toThrow(/leads outside the volume/);
    expect(() => statSync(join(dir, "outside", "new"))).toThrow();
  });

  it("refuses .. and absolute paths", () => {
    expect(() => resolveSubPath(vol, "../x")).toThrow(/'\.\.'/);
    expect(() => resolveSubPath(vol, "/etc")).toThrow(/relative/);
  });
});

describe("pinSubPath (the node agent runs as root)", () => {
  it("mounts what was checked: swapping the path for a symlink afterwards changes nothing", () => {
    mkdirSync(join(vol, "data"));
    writeFileSync(join(vol, "data", "mine"), "pod data");
    writeFileSync(join(vol, "conf"), "a file");
    const real = resolveSubPath(vol, "data");
    const pinned = pinSubPath(vol, real, join(dir, "pins", "dir"));
    // The container now swaps the checked directory for a symlink to the node's root.
    renameSync(join(vol, "data"), join(vol, "moved"));
    symlinkSync("/", join(vol, "data"));
    expect(readdirSync(pinned)).toEqual(["mine"]);
    expect(readFileSync(pinSubPath(vol, resolveSubPath(vol, "conf"), join(dir, "pins", "file")), "utf8")).toBe("a file");
    // Pinned again (a restarted container): the earlier mount is replaced, not stacked.
    pinSubPath(vol, join(vol, "moved"), join(dir, "pins", "dir"));
    const mounts = readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.split(" ")[4] === join(dir, "pins", "dir"));
    expect(mounts).toHaveLength(1);
  });
});
