import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resolveSubPath } from "./subpath.ts";

let dir: string;
let vol: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "skiff-subpath-"));
  vol = join(dir, "vol");
  mkdirSync(vol);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

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
