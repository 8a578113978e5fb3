import { describe, expect, it } from "vitest";
import { MALLOC_ARENA_MAX, memoryNodeFlags, memoryRelaunch } from "./node-memory.ts";

const NODE = "/usr/bin/node";
const ARGV = [NODE, "/opt/skiff/cmd/skiff.ts", "agent", "--log-level", "warn"];

describe("memoryRelaunch", () => {
  it("adds every memory flag before the user's node options and the script, and MALLOC_ARENA_MAX", () => {
    const next = memoryRelaunch(NODE, ["--import", "x.ts"], ARGV, { PATH: "/bin" });
    expect(next?.argv).toEqual([NODE, ...memoryNodeFlags("agent"), "--import", "x.ts", "/opt/skiff/cmd/skiff.ts", "agent", "--log-level", "warn"]);
    expect(next?.env).toEqual({ PATH: "/bin", MALLOC_ARENA_MAX });
  });

  it("does nothing once everything is set, so the re-executed process goes on", () => {
    const first = memoryRelaunch(NODE, [], ARGV, {})!;
    const execArgv = first.argv.slice(1, first.argv.indexOf(ARGV[1]));
    expect(memoryRelaunch(NODE, execArgv, first.argv, first.env)).toBeUndefined();
  });

  it("keeps what the user set, on the command line, in NODE_OPTIONS or in the environment", () => {
    const next = memoryRelaunch(NODE, ["--max-semi-space-size=64"], ARGV, { NODE_OPTIONS: "--heap_growing_percent=0", MALLOC_ARENA_MAX: "8" });
    expect(next).toBeUndefined();
    const semiOnly = memoryRelaunch(NODE, ["--min-semi-space-size=0"], ARGV, { MALLOC_ARENA_MAX: "8" });
    expect(semiOnly?.argv.filter((a) => a.includes("semi-space"))).toEqual(["--min-semi-space-size=0"]);
    expect(semiOnly?.argv).toContain("--heap-growing-percent=50");
    expect(semiOnly?.env.MALLOC_ARENA_MAX).toBe("8");
  });

  it("collects old space early (--heap-growing-percent) only where a node agent runs; every daemon gets the fixed young generation", () => {
    for (const cmd of ["agent", "server", "up"]) expect(memoryNodeFlags(cmd), cmd).toContain("--heap-growing-percent=50");
    for (const cmd of ["apiserver", "scheduler", "controller-manager"]) {
      const next = memoryRelaunch(NODE, [], [NODE, "skiff.ts", cmd], {});
      expect(next?.argv.some((a) => a.startsWith("--heap-growing-percent")), cmd).toBe(false);
      expect(next?.argv, cmd).toContain("--max-semi-space-size=16");
    }
    expect(memoryNodeFlags("token")).toEqual([]);
  });

  it("re-executes the daemons only, not one-shot commands or help", () => {
    for (const daemon of ["apiserver", "agent", "server", "scheduler", "controller-manager", "up"]) {
      expect(memoryRelaunch(NODE, [], [NODE, "skiff.ts", daemon], {}), daemon).toBeDefined();
    }
    expect(memoryRelaunch(NODE, [], [NODE, "skiff.ts", "token", "create"], {})).toBeUndefined();
    expect(memoryRelaunch(NODE, [], [NODE, "skiff.ts", "etcd-snapshot", "save"], {})).toBeUndefined();
    expect(memoryRelaunch(NODE, [], [NODE, "skiff.ts", "--help"], {})).toBeUndefined();
    expect(memoryRelaunch(NODE, [], [NODE, "skiff.ts"], {})).toBeUndefined();
  });

  it("leaves a process with an IPC channel from its parent alone (execve would close it)", () => {
    expect(memoryRelaunch(NODE, [], ARGV, { NODE_CHANNEL_FD: "3" })).toBeUndefined();
  });
});
