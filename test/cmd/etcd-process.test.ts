import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { freePorts } from "../harness/ports.ts";

it("Ctrl-C in skiff up's terminal does not stop its etcd before skiff up has shut down", async () => {
  const [client, peer, metrics] = await freePorts(3);
  const child = spawn(process.execPath, [fileURLToPath(new URL("./ctrl-c-child.ts", import.meta.url)), String(client), String(peer), String(metrics)], {
    stdio: ["ignore", "pipe", "inherit"],
    detached: true, // a process group of its own, like a shell's foreground job
  });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = once(child, "exit");
  const deadline = Date.now() + 30_000;
  while (!out.includes("ready\n") && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(out).toContain("ready\n");
  process.kill(-child.pid!, "SIGINT"); // the terminal signals the whole foreground group
  await exited;
  expect(JSON.parse(out.split("\n")[1])).toEqual({ healthy: true });
});
