// A pod whose sandbox was made anew runs its init containers again, in order, before its app
// containers start again — as the kubelet does when it recreates a pod sandbox. Here the sandbox
// is the pod's network namespace: a reboot takes it (network.ts reports the pod `restored`).
//
// Which init instances count for the new sandbox is kept as a floor per init container (the
// first attempt made after the change), in <pod dir>/init-floors.json: an agent restarted halfway
// through the sequence goes on with it instead of taking the old, completed instances as done.
// The file goes once every init container is done again.
import * as fs from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import { join } from "node:path";
import type { Container, Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ContainerInfo } from "../runtime/runtime.ts";
import { podDir } from "./pod-files.ts";
import { instancesByName } from "./pod-status.ts";

/** Init container name → the lowest attempt that counts for the current sandbox. */
export type InitFloors = Record<string, number>;

const FILE = "init-floors.json";
// The callback form: read at a pod's first sync, where fs/promises' FileHandle costs more CPU.
const readFile = promisify(fs.readFile);

/**
 * The floors for a sandbox made anew, or undefined when nothing runs again: a pod without init
 * containers, or a restartPolicy Never pod whose app containers already started (the kubelet
 * does not recreate those; their lost containers fail the pod).
 */
export function initFloorsFor(pod: Pod, containers: ContainerInfo[]): InitFloors | undefined {
  const spec = pod.spec!;
  if (spec.initContainers.length === 0) return undefined;
  const byName = instancesByName(containers);
  const appStarted = spec.containers.some((c) => (byName.get(c.name) ?? []).length > 0);
  if (spec.restartPolicy === "Never" && appStarted) return undefined;
  const floors: InitFloors = {};
  for (const c of spec.initContainers) floors[c.name] = (byName.get(c.name)?.[0]?.attempt ?? -1) + 1;
  return floors;
}

/** Whether an init container's instance belongs to the current sandbox. */
export function countsForSandbox(floors: InitFloors | undefined, c: Container, info: ContainerInfo | undefined): info is ContainerInfo {
  return info !== undefined && info.attempt >= (floors?.[c.name] ?? 0);
}

export async function loadInitFloors(rootDir: string, uid: string): Promise<InitFloors | undefined> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(join(podDir(rootDir, uid), FILE), "utf8"));
  } catch {
    return undefined; // none (no re-initialization under way), or torn by a crash before the rename
  }
  const valid = parsed !== null && typeof parsed === "object" && Object.values(parsed).every((v) => Number.isInteger(v));
  return valid ? (parsed as InitFloors) : undefined;
}

export async function saveInitFloors(rootDir: string, uid: string, floors: InitFloors): Promise<void> {
  const dir = podDir(rootDir, uid);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${FILE}.tmp`), JSON.stringify(floors));
  await rename(join(dir, `${FILE}.tmp`), join(dir, FILE));
}

export async function clearInitFloors(rootDir: string, uid: string): Promise<void> {
  await rm(join(podDir(rootDir, uid), FILE), { force: true });
}
