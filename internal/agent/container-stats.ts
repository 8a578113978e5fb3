// Per-container CPU and memory from the container's cgroups, as cAdvisor reads them, found through
// the container's process (/proc/<pid>/cgroup): cgroup v1 cpuacct.usage (ns) and the memory
// controller's usage minus inactive file pages (the working set, as the kubelet computes it);
// cgroup v2 cpu.stat usage_usec and memory.current minus inactive_file.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CGROUP_ROOT, memoryCgroupDir, processWorkingSet } from "./eviction/observe.ts";

export interface ContainerStats {
  cpuSeconds: number;
  workingSetBytes: number;
}

/** The cpu accounting directory of a process: v1 the controller list holding "cpuacct", v2 the unified path. */
export function cpuCgroupDir(procCgroup: string, root = CGROUP_ROOT): { dir: string; v2: boolean } | undefined {
  let v2: string | undefined;
  for (const line of procCgroup.split("\n")) {
    const [, controllers, path] = line.split(":");
    if (path === undefined) continue;
    if (controllers.split(",").includes("cpuacct")) return { dir: join(root, controllers, path), v2: false };
    if (controllers === "") v2 = join(root, path);
  }
  return v2 === undefined ? undefined : { dir: v2, v2: true };
}

/** CPU and working set of the container whose main process is `pid`; undefined when it is gone. */
export function containerStats(pid: number, root = CGROUP_ROOT): ContainerStats | undefined {
  let procCgroup: string;
  try {
    procCgroup = readFileSync(`/proc/${pid}/cgroup`, "utf8");
  } catch {
    return undefined;
  }
  if (!memoryCgroupDir(procCgroup, root)) return undefined;
  let cpuSeconds = 0;
  const cpu = cpuCgroupDir(procCgroup, root);
  try {
    if (cpu && !cpu.v2) cpuSeconds = Number(readFileSync(join(cpu.dir, "cpuacct.usage"), "utf8").trim()) / 1e9;
    else if (cpu) cpuSeconds = Number(/^usage_usec (\d+)$/m.exec(readFileSync(join(cpu.dir, "cpu.stat"), "utf8"))?.[1] ?? 0) / 1e6;
  } catch {
    // the cgroup went away while being read
  }
  return { cpuSeconds, workingSetBytes: Number(processWorkingSet(pid, root)) };
}
