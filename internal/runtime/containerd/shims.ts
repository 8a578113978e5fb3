// Shims that outlive their container. containerd ends a task's shim itself on Tasks/Delete, but
// gives the shim's Shutdown a few seconds only: on a loaded machine that can pass, and containerd
// then logs "failed to shutdown shim task and the shim might be leaked" and forgets the shim,
// which keeps running (a process, its socket, memory) with no record left to find it by. A failed
// Tasks/Create cleans its shim up the same way. The only trace is the process itself: a
// `containerd-shim…` whose command line names this containerd (`-address`), this namespace and an
// id no container record has any more.
//
// The sweep finds those and ends them: the task first, through containerd (it may still hold
// one), then the shim process. It runs when the runtime is created (a previous agent's leftovers)
// and a while after containers are removed or fail to be created (SHIM_GRACE_MS: a shim exits a
// moment after its task is deleted; only one that is still there then is a leak).
import { readdirSync, readFileSync } from "node:fs";
import type { Services } from "./client.ts";

/** How long after a removal the sweep looks: well past containerd's own shutdown timeout. */
export const SHIM_GRACE_MS = 15_000;
/** How long the sweep waits for a shim to exit after its task was deleted, before SIGKILL. */
const EXIT_WAIT_MS = 2_000;

export interface ShimProcess {
  pid: number;
  /** The container (task) id the shim serves. */
  id: string;
}

function arg(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** The shims of containerd at `address`, namespace `namespace`, from /proc. */
export function listShims(address: string, namespace: string, procRoot = "/proc"): ShimProcess[] {
  const out: ShimProcess[] = [];
  let names: string[];
  try {
    names = readdirSync(procRoot);
  } catch {
    return out; // no /proc: nothing to see
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    let args: string[];
    try {
      args = readFileSync(`${procRoot}/${name}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone
    }
    if (!args[0]?.includes("containerd-shim")) continue;
    // `… start` is the short-lived launcher of a shim; the shim itself has no verb.
    if (args.includes("start") || args.includes("delete")) continue;
    const id = arg(args, "-id");
    if (id && arg(args, "-address") === address && arg(args, "-namespace") === namespace) out.push({ pid: Number(name), id });
  }
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

export interface ShimSweeper {
  /** Looks once now; resolves with the ids of the shims it ended. */
  sweep(): Promise<string[]>;
  /** A container was removed: sweep once SHIM_GRACE_MS from now (one sweep for many removals). */
  removed(): void;
  stop(): void;
}

export function createShimSweeper(opts: {
  svc: Services;
  address: string;
  namespace: string;
  graceMs?: number;
  onReaped?(ids: string[]): void;
}): ShimSweeper {
  const { svc } = opts;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<string[]> | undefined;

  async function sweepOnce(): Promise<string[]> {
    // Processes first, records second: a shim seen here whose container is being created already
    // has its record (containerd writes it before the task), so it shows in the list below.
    const shims = listShims(opts.address, opts.namespace);
    if (shims.length === 0) return [];
    const { containers } = await svc.containers.list({});
    const known = new Set(containers.map((c) => c.id));
    const orphans = shims.filter((s) => !known.has(s.id));
    for (const s of orphans) {
      // The task may still be on containerd's list (a failed shutdown leaves it there): end it.
      await svc.tasks.kill({ containerId: s.id, signal: 9, all: true }).catch(() => undefined);
      await svc.tasks.delete({ containerId: s.id }).catch(() => undefined);
      const deadline = Date.now() + EXIT_WAIT_MS;
      while (alive(s.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (alive(s.pid)) {
        try {
          process.kill(s.pid, "SIGKILL");
        } catch {
          // exited just now
        }
      }
    }
    const ids = orphans.map((s) => s.id);
    if (ids.length > 0) opts.onReaped?.(ids);
    return ids;
  }

  const sweep = (): Promise<string[]> => {
    // One at a time: a second caller shares the sweep under way.
    running ??= sweepOnce().finally(() => (running = undefined));
    return running;
  };

  return {
    sweep,
    removed() {
      if (stopped || timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        sweep().catch(() => undefined); // containerd away: the next removal or start tries again
      }, opts.graceMs ?? SHIM_GRACE_MS);
      timer.unref();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
