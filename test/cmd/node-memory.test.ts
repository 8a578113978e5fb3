// `skiff …` runs with Skiff's Node memory settings however it is started (`node cmd/skiff.ts`, as
// the systemd units do): the process re-executes itself with them, keeping its pid.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { MALLOC_ARENA_MAX, memoryNodeFlags } from "../../internal/cmd/node-memory.ts";

const SKIFF = fileURLToPath(new URL("../../cmd/skiff.ts", import.meta.url));
// Runs before cmd/skiff.ts in every image of the process (node keeps --import across the re-exec).
const REPORT = `data:text/javascript,process.stderr.write("memory-report "+JSON.stringify({pid:process.pid,execArgv:process.execArgv.filter(a=>!a.startsWith("--import")&&!a.startsWith("data:")),arena:process.env.MALLOC_ARENA_MAX??null})+"\\n")`;

function reports(nodeArgs: string[], env: NodeJS.ProcessEnv = {}, command = ["agent", "--help"]) {
  const { MALLOC_ARENA_MAX: _drop, ...base } = process.env;
  const r = spawnSync(process.execPath, [...nodeArgs, "--import", REPORT, SKIFF, ...command], { encoding: "utf8", env: { ...base, ...env }, timeout: 100_000 });
  expect(r.status, r.stderr).toBe(0);
  return r.stderr.split("\n").filter((l) => l.startsWith("memory-report ")).map((l) => JSON.parse(l.slice("memory-report ".length)) as { pid: number; execArgv: string[]; arena: string | null });
}

describe("skiff's Node memory settings", () => {
  it("re-executes node cmd/skiff.ts with the flags and MALLOC_ARENA_MAX, as the same process", () => {
    const [before, after, ...more] = reports([]);
    expect(more).toEqual([]);
    expect(before).toEqual({ pid: before.pid, execArgv: [], arena: null });
    expect(after).toEqual({ pid: before.pid, execArgv: memoryNodeFlags("agent"), arena: MALLOC_ARENA_MAX });
  });

  it("runs once, unchanged, when the user set every one of them", () => {
    const mine = ["--max-semi-space-size=0", "--heap-growing-percent=0"];
    expect(reports(mine, { MALLOC_ARENA_MAX: "8" })).toEqual([{ pid: expect.any(Number), execArgv: mine, arena: "8" }]);
  });

  it("runs a one-shot command once, without them", () => {
    expect(reports([], {}, ["token", "--help"])).toEqual([{ pid: expect.any(Number), execArgv: [], arena: null }]);
  });
});
