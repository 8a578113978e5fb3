// The bare runtime figure for `bench pods`: Debian's `ctr` starting a container on the same
// containerd with the same image, `ctr -a SOCK -n NS run -d IMAGE ID sleep 3600` (snapshot,
// container record, task create, task start; no network, no logger), timed from spawn to exit.
// NS is a namespace of its own, so that the agent never sees these containers (its orphan sweep
// would remove them, and every listContainers of its syncs would grow). The image is imported
// into it by our runtime, as into the agent's.
import { spawn } from "node:child_process";
import { readdirSync, rmdirSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { createContainerdRuntime, type ContainerdRuntime } from "../internal/runtime/containerd/index.ts";
import { interruptedBy, onCleanup } from "./lib/cleanup.ts";

export interface CtrRunner {
  namespace: string;
  /** Starts one container; resolves with the wall time of the ctr process in ms. */
  run(id: string): Promise<number>;
  /** Removes every container of the namespace (task killed, snapshot and record removed). */
  removeAll(): Promise<number>;
  /** The argv of one run, for the report. */
  commandLine(id: string): string;
}

function ctr(args: string[]): Promise<{ code: number | null; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn("ctr", args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stderr, ms: performance.now() - t0 }));
  });
}

export async function createCtrRunner(opts: { address: string; namespace: string; imageRef: string; imageTar: string }): Promise<CtrRunner> {
  const runtime: ContainerdRuntime = createContainerdRuntime({ address: opts.address, namespace: opts.namespace });
  const removeAll = async () => {
    const all = await runtime.listContainers();
    for (const c of all) await runtime.removeContainer(c.id);
    return all.length;
  };
  onCleanup(async () => {
    await removeAll().catch(() => undefined);
    await runtime.close();
    // runc made /<namespace> cgroups (cgroupsPath /<ns>/<id>); the containers are gone, the parents stay.
    let controllers: string[] = [];
    try {
      controllers = readdirSync("/sys/fs/cgroup");
    } catch {
      // no cgroup fs: nothing to remove
    }
    for (const controller of [...controllers, ""]) {
      try {
        rmdirSync(`/sys/fs/cgroup/${controller}/${opts.namespace}`);
      } catch {
        // not there, or not empty
      }
    }
  });
  await runtime.importImage(opts.imageTar);
  const argv = (id: string) => ["-a", opts.address, "-n", opts.namespace, "run", "-d", opts.imageRef, id, "sleep", "3600"];
  return {
    namespace: opts.namespace,
    async run(id) {
      if (interruptedBy()) throw new Error("interrupted");
      const r = await ctr(argv(id));
      if (r.code !== 0) throw new Error(`ctr ${argv(id).join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
      return r.ms;
    },
    removeAll,
    commandLine: (id) => `ctr ${argv(id).join(" ")}`,
  };
}
