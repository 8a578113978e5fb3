// The Node flags every Skiff daemon runs with, whoever starts it (systemd units, `skiff up`,
// tests, benchmarks): `cmd/skiff.ts` re-executes itself with them before loading anything else
// (process.execve: same pid, same fds 0–2, so supervisors and `kill` see one process).
//
// Why: V8's young generation starts at 1 MiB semi-spaces and doubles up to its maximum (32 MiB
// semi-spaces on a machine this size, 64 MiB of young generation with the to-space) under load,
// and gives the pages back only when idle — the RSS of a busy apiserver or agent swung by up to
// 100 MiB with it (bench/README.md, `soak`). A fixed semi-space (min = max) makes the young
// generation one size from the start: RSS levels off instead of drifting with load.
//
// A flag the user gives (on the command line or in NODE_OPTIONS) wins: any --min/--max-semi-space-size
// there and these are not added (`--max-semi-space-size=0` gives V8's default back).
/** Semi-space size in MiB (the young generation is two of them). */
export const SEMI_SPACE_MIB = 16;
export const MEMORY_NODE_FLAGS = [`--min-semi-space-size=${SEMI_SPACE_MIB}`, `--max-semi-space-size=${SEMI_SPACE_MIB}`];

const SET_BY_USER = /--(min|max)[-_]semi[-_]space[-_]size\b/;

/**
 * The argv to re-execute with, or undefined when there is nothing to add: the flags are already
 * there (given by the user or by a previous re-exec), or the process has an IPC channel from its
 * parent (only fds 0–2 survive execve).
 */
export function memoryRelaunchArgv(execPath: string, execArgv: readonly string[], argv: readonly string[], env: NodeJS.ProcessEnv): string[] | undefined {
  if (execArgv.some((a) => SET_BY_USER.test(a)) || SET_BY_USER.test(env.NODE_OPTIONS ?? "")) return undefined;
  if (env.NODE_CHANNEL_FD !== undefined) return undefined;
  return [execPath, ...MEMORY_NODE_FLAGS, ...execArgv, ...argv.slice(1)];
}

/** Re-executes this process with MEMORY_NODE_FLAGS when it lacks them; returns when it has them (or cannot). */
export function relaunchWithMemoryFlags(): void {
  if (typeof process.execve !== "function") return;
  const argv = memoryRelaunchArgv(process.execPath, process.execArgv, process.argv, process.env);
  if (argv) process.execve(process.execPath, argv, process.env);
}
