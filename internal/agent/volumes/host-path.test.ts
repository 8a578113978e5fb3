import { create } from "@bufbuild/protobuf";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HostPathVolumeSourceSchema } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { prepareHostPath } from "./host-path.ts";

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "skiff-hostpath-"))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));
const src = (path: string, type: string) => create(HostPathVolumeSourceSchema, { path, type });

describe("hostPath types", () => {
  it("checks that the path exists with the type asked for", async () => {
    writeFileSync(join(dir, "f"), "x");
    await expect(prepareHostPath(src(dir, "Directory"))).resolves.toBe(dir);
    await expect(prepareHostPath(src(join(dir, "f"), "File"))).resolves.toBe(join(dir, "f"));
    await expect(prepareHostPath(src(join(dir, "f"), "Directory"))).rejects.toThrow(`hostPath type check failed: ${join(dir, "f")} is not a directory`);
    await expect(prepareHostPath(src(dir, "Socket"))).rejects.toThrow("is not a socket");
    await expect(prepareHostPath(src("/dev/null", "CharDevice"))).resolves.toBe("/dev/null");
    await expect(prepareHostPath(src("/dev/null", "BlockDevice"))).rejects.toThrow("is not a block device");
    await expect(prepareHostPath(src(join(dir, "nope"), "File"))).rejects.toThrow("does not exist");
    // No type: no check.
    await expect(prepareHostPath(src(join(dir, "nope"), ""))).resolves.toBe(join(dir, "nope"));
  });

  it("makes DirectoryOrCreate directories and FileOrCreate files, never truncating one that exists", async () => {
    await prepareHostPath(src(join(dir, "a", "b"), "DirectoryOrCreate"));
    expect(statSync(join(dir, "a", "b")).isDirectory()).toBe(true);
    await prepareHostPath(src(join(dir, "new.log"), "FileOrCreate"));
    expect(statSync(join(dir, "new.log")).isFile()).toBe(true);
    writeFileSync(join(dir, "kept"), "content");
    await prepareHostPath(src(join(dir, "kept"), "FileOrCreate"));
    expect(readFileSync(join(dir, "kept"), "utf8")).toBe("content");
    await expect(prepareHostPath(src(join(dir, "no-dir", "f"), "FileOrCreate"))).rejects.toThrow("does not exist (FileOrCreate makes the file only)");
    mkdirSync(join(dir, "d"));
    await expect(prepareHostPath(src(join(dir, "d"), "FileOrCreate"))).rejects.toThrow("is not a file");
  });
});
