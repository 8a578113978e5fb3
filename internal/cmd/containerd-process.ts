// `skiff up` uses a running containerd when there is one, else starts its own with root, state
// and socket under the state directory. Like etcd, it dies with us (EOF on a pipe), but the
// containers keep running under their shims and are adopted on the next start.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createContainerdClient } from "../runtime/containerd/index.ts";

export interface ContainerdProcess {
  address: string;
  /** False when an already running containerd is used. */
  started: boolean;
  stop(): Promise<void>;
}

async function serving(address: string): Promise<boolean> {
  if (!existsSync(address)) return false;
  const client = createContainerdClient({ address, namespace: "skiff" });
  try {
    await client.version.version({}, { timeoutMs: 2000 });
    return true;
  } catch {
    return false;
  } finally {
    client.close();
  }
}

function config(dir: string, address: string): string {
  return `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "${address}"
  max_recv_message_size = 16777216
  max_send_message_size = 16777216

[ttrpc]
  address = "${address}.ttrpc"
`;
}

export async function useOrStartContainerd(address: string | undefined, stateDir: string): Promise<ContainerdProcess> {
  for (const candidate of address ? [address] : ["/run/containerd/containerd.sock"]) {
    if (await serving(candidate)) return { address: candidate, started: false, stop: async () => {} };
  }
  if (address) throw new Error(`containerd is not serving on ${address}`);
  const dir = join(stateDir, "containerd");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const own = join(dir, "containerd.sock");
  writeFileSync(join(dir, "config.toml"), config(dir, own));
  const script = 'exec 3<&0; "$0" "$@" </dev/null 3<&- & pid=$!; (read _ <&3; kill -TERM $pid 2>/dev/null) & wait $pid';
  const child = spawn("sh", ["-c", script, "containerd", "--config", join(dir, "config.toml")], { stdio: ["pipe", "ignore", "pipe"], detached: true });
  // detached: its own process group, so Ctrl-C in our terminal does not stop it before we have
  // shut down cleanly (controllers release their leases through the apiserver, which needs it).
  let log = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (log = (log + d).slice(-4000)));
  child.on("error", () => {});
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const deadline = Date.now() + 30_000;
  while (!(await serving(own))) {
    if (child.exitCode !== null) throw new Error(`containerd exited before serving (is Debian's containerd installed?):\n${log}`);
    if (Date.now() > deadline) throw new Error(`containerd did not start serving on ${own}:\n${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    address: own,
    started: true,
    async stop() {
      child.stdin!.end();
      const hard = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(hard);
    },
  };
}
