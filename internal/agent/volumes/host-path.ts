// hostPath volumes: the node's own path, checked against the type the pod asks for (as the
// kubelet does) before any container mounts it.
//
//   ""                 no check (whatever is there, or nothing: runc then makes a directory)
//   DirectoryOrCreate  made (0755, with parents) when absent; must be a directory
//   Directory          must exist and be a directory
//   FileOrCreate       an empty file (0644) made when absent (its directory must exist); must be a file
//   File / Socket / CharDevice / BlockDevice   must exist and be one
import { lstat, mkdir, open, stat } from "node:fs/promises";
import type { Stats } from "node:fs";
import { dirname } from "node:path";
import type { HostPathVolumeSource } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { VolumeMountError } from "./projections.ts";

const CHECKS: Record<string, { what: string; is: (s: Stats) => boolean }> = {
  Directory: { what: "a directory", is: (s) => s.isDirectory() },
  DirectoryOrCreate: { what: "a directory", is: (s) => s.isDirectory() },
  File: { what: "a file", is: (s) => s.isFile() },
  FileOrCreate: { what: "a file", is: (s) => s.isFile() },
  Socket: { what: "a socket", is: (s) => s.isSocket() },
  CharDevice: { what: "a character device", is: (s) => s.isCharacterDevice() },
  BlockDevice: { what: "a block device", is: (s) => s.isBlockDevice() },
};

async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Makes what an ...OrCreate type asks for, then checks the type; returns the path. */
export async function prepareHostPath(src: HostPathVolumeSource): Promise<string> {
  const { path, type } = src;
  const check = CHECKS[type];
  if (!check) return path;
  let st = await statOrUndefined(path);
  if (!st && type === "DirectoryOrCreate") {
    await mkdir(path, { recursive: true, mode: 0o755 });
    st = await stat(path);
  }
  if (!st && type === "FileOrCreate") {
    if (!(await statOrUndefined(dirname(path)))?.isDirectory()) {
      throw new VolumeMountError(`hostPath type check failed: ${path}: its directory ${dirname(path)} does not exist (FileOrCreate makes the file only)`);
    }
    // "wx": never truncate a file made meanwhile by someone else.
    await (await open(path, "wx", 0o644).catch(async (err: NodeJS.ErrnoException) => (err.code === "EEXIST" ? open(path, "r") : Promise.reject(err)))).close();
    st = await lstat(path);
  }
  if (!st) throw new VolumeMountError(`hostPath type check failed: ${path} does not exist (type ${type})`);
  if (!check.is(st)) throw new VolumeMountError(`hostPath type check failed: ${path} is not ${check.what} (type ${type})`);
  return path;
}
