// The Node flags every Skiff daemon runs with, whoever starts it (systemd units, `skiff up`,
// tests, benchmarks): `cmd/skiff.ts` re-executes itself with them before loading anything else
// (process.execve: same pid, same fds 0–2, so supervisors and `kill` see one process).
//
// Why (`npm run bench -- soak`, bench/README.md): with V8's and glibc's defaults the RSS of a busy
// apiserver or agent swings by 100 MiB and more with heap V8 merely keeps committed, so it cannot
// be told from a leak and does not level off:
// - V8's young generation starts at 1 MiB semi-spaces and doubles up to 32 MiB ones (on a machine
//   of this size) under load; fixed (min = max) it is one size from the start;
// - V8 lets old space grow to up to 4× what survived the last full collection before it collects
//   again (the agent's heap went 52 → 139 MiB in use between collections with 50 MiB live);
//   --heap-growing-percent=50 collects at 1.5×. Only for the processes that run a node agent
//   (agent, server, up): the agent's RSS levelled at ~200 MiB with it and ~310 without, where a
//   standalone apiserver's levelled at ~192 MiB either way (soak runs) while collecting that often
//   cost it 0.3–0.5 ms of CPU per pod in `bench scale` (≈ 13 % of its pods/s). The standalone
//   control-plane daemons (apiserver, scheduler, controller-manager) keep V8's own growing;
// - glibc gives each thread that mallocs its own arena (up to 8 per core) and keeps their free
//   memory: MALLOC_ARENA_MAX=2 (malloc_trim found 36 MiB free in the agent without it, 14 with it).
//
// What the user sets wins: a flag of the same name on the command line or in NODE_OPTIONS, or
// MALLOC_ARENA_MAX in the environment, and that one is not added (`--max-semi-space-size=0`,
// `--heap-growing-percent=0` give V8's own sizing back).
/** Semi-space size in MiB (the young generation is two of them). */
export const SEMI_SPACE_MIB = 16;
export const HEAP_GROWING_PERCENT = 50;
export const MALLOC_ARENA_MAX = "2";

/** The commands that run a node agent in their process. */
const WITH_AGENT: ReadonlySet<string> = new Set(["agent", "server", "up"]);

const FLAGS: { given: RegExp; flags: string[]; only?: ReadonlySet<string> }[] = [
  { given: /--(min|max)[-_]semi[-_]space[-_]size\b/, flags: [`--min-semi-space-size=${SEMI_SPACE_MIB}`, `--max-semi-space-size=${SEMI_SPACE_MIB}`] },
  { given: /--heap[-_]growing[-_]percent\b/, flags: [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`], only: WITH_AGENT },
];

/**
 * The commands that run as daemons. One-shot commands (token, etcd-snapshot, secrets-encrypt) are
 * not re-executed: they finish before any of these settings could matter, and a second Node start
 * would only add to their run time.
 */
export const DAEMON_COMMANDS: ReadonlySet<string> = new Set(["apiserver", "agent", "server", "scheduler", "controller-manager", "up"]);

/** The flags Skiff adds for one daemon command (MALLOC_ARENA_MAX goes with each), for documentation and tests. */
export function memoryNodeFlags(command: string): string[] {
  return DAEMON_COMMANDS.has(command) ? FLAGS.filter((f) => !f.only || f.only.has(command)).flatMap((f) => f.flags) : [];
}

/**
 * The argv and environment to re-execute with, or undefined when there is nothing to add (all set,
 * by the user or by the re-exec itself), the command is not a daemon (`skiff token create`, `skiff
 * --help`), or the process has an IPC channel from its parent (only fds 0–2 survive execve).
 */
export function memoryRelaunch(execPath: string, execArgv: readonly string[], argv: readonly string[], env: NodeJS.ProcessEnv): { argv: string[]; env: NodeJS.ProcessEnv } | undefined {
  if (env.NODE_CHANNEL_FD !== undefined) return undefined;
  const command = argv.slice(2).find((a) => !a.startsWith("-"));
  if (command === undefined || !DAEMON_COMMANDS.has(command)) return undefined;
  const given = (re: RegExp) => execArgv.some((a) => re.test(a)) || re.test(env.NODE_OPTIONS ?? "");
  const flags = FLAGS.filter((f) => (!f.only || f.only.has(command)) && !given(f.given)).flatMap((f) => f.flags);
  const addArena = env.MALLOC_ARENA_MAX === undefined;
  if (flags.length === 0 && !addArena) return undefined;
  return {
    argv: [execPath, ...flags, ...execArgv, ...argv.slice(1)],
    env: addArena ? { ...env, MALLOC_ARENA_MAX } : env,
  };
}

/** Re-executes this process with the memory settings it lacks; returns when it has them all (or cannot re-execute). */
export function relaunchWithMemoryFlags(): void {
  if (typeof process.execve !== "function") return;
  const next = memoryRelaunch(process.execPath, process.execArgv, process.argv, process.env);
  if (next) process.execve(process.execPath, next.argv, next.env);
}
