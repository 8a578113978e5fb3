// A test run that dies (SIGKILL) with nodes and pods up leaves nothing that breaks the next run:
// its agents stop on their own, and the next startMultiNode() removes its netns (nodes' and
// pods'), bridge, veths, containerd (with the containers) and temp dir.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { listNetns } from "../../internal/network/netns.ts";
import { run } from "../../internal/network/exec.ts";
import { serverContainer, startMultiNode, waitFor, type MultiNodeCluster } from "../harness/multinode.ts";
import { findRun } from "../network/leftovers.ts";

const CHILD = fileURLToPath(new URL("./crash-child.ts", import.meta.url));

interface Made {
  runName: string;
  containerdDir: string;
  dir: string;
  podNetns: string;
  podIP: string;
  agentPids: number[];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids whose command line mentions `needle`. */
function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(needle)) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

let next: MultiNodeCluster | undefined;
afterAll(async () => {
  await next?.stop();
});

it("a crashed run's nodes, pods and processes are gone once the next run starts, and that run works", async () => {
  const child = spawn(process.execPath, [CHILD], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    let buf = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      buf += d;
      if (buf.includes("\n")) resolve(buf.split("\n")[0]);
    });
    child.on("exit", (code) => reject(new Error(`crash-child exited (${code}) before it was up`)));
  });
  const made = JSON.parse(line) as Made;
  expect(listNetns()).toContain(made.podNetns);
  child.kill("SIGKILL");

  // The agents notice their parent is gone and stop by themselves.
  await waitFor("the crashed run's agents to exit", () => made.agentPids.every((p) => !alive(p)), 20_000);

  next = await startMultiNode({ nodes: 1 });
  expect(await findRun(made.runName)).toEqual([]);
  expect(listNetns().filter((n) => n.startsWith(made.runName))).toEqual([]);
  expect((await run("ip", ["-br", "link"])).stdout).not.toContain(made.runName);
  expect(existsSync(made.containerdDir)).toBe(false);
  expect(existsSync(made.dir)).toBe(false);
  expect(processesMentioning(made.containerdDir)).toEqual([]);

  await next.createPod(next.node(1), "web", { containers: [serverContainer()] });
  const p = await next.waitForRunning("web");
  await waitFor("httpd in the new run", () => next!.wgetFromPod(p, "http://127.0.0.1:8080/").then(() => true, () => false), 20_000);
}, 240_000);
