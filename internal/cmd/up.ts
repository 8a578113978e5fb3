// `skiff up`: a whole control plane in one process (like k3s): etcd as a child process with its
// data under the state directory, the apiserver, the skiffctl config pointing at it, and
// optionally manifests applied. Running it again finds the same state. Later issues add the
// scheduler, controllers and a node agent here.
import { defineCommand } from "citty";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { startApiServer } from "../apiserver/server.ts";
import { configPath, loadConfig, saveConfig } from "../cli/config.ts";
import { runSkiffctl } from "../cli/main.ts";
import { createLogger } from "../log/log.ts";
import { createEtcdStore } from "../storage/etcd.ts";
import { parseListen } from "./apiserver.ts";
import { startEtcdProcess } from "./etcd-process.ts";
import { guarded } from "./guard.ts";

export const upCommand = defineCommand({
  meta: { name: "up", description: "Start a one-machine Skiff cluster (etcd + control plane) in the foreground" },
  args: {
    "state-dir": { type: "string", description: "Where etcd keeps its data", default: join(homedir(), ".skiff", "state") },
    listen: { type: "string", description: "HOST:PORT for the apiserver", default: "127.0.0.1:6443" },
    "etcd-port": { type: "string", description: "etcd client port (its peer port is the next one)", default: "2379" },
    apply: { type: "string", description: "Apply the manifests in this file or directory once the cluster is up" },
    "log-level": { type: "string", description: "trace, debug, info, warn or error", default: "info" },
  },
  run: guarded(async ({ args }) => {
    const log = createLogger("skiff", args["log-level"]);
    const { host, port } = parseListen(args.listen);
    const etcdPort = Number(args["etcd-port"]);
    if (!Number.isInteger(etcdPort) || etcdPort < 1 || etcdPort > 65534) throw new Error(`--etcd-port must be a port number, got "${args["etcd-port"]}"`);
    const stateDir = resolve(args["state-dir"]);

    log.info({ stateDir }, "starting etcd");
    const etcd = await startEtcdProcess(stateDir, etcdPort, etcdPort + 1);
    const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/skiff" });
    const server = await startApiServer({ store, host, port, log: log.child({ component: "apiserver" }), compactionIntervalMs: 300_000 });

    // skiffctl finds this cluster without flags.
    const cfgPath = configPath();
    await saveConfig(cfgPath, { ...(await loadConfig(cfgPath)), server: server.url });
    log.info({ server: server.url, config: cfgPath }, "cluster is up; try: npx skiffctl get all -A");

    if (args.apply) {
      const code = await runSkiffctl(["apply", "-f", args.apply, "--server", server.url], {
        out: (t) => void process.stdout.write(t),
        err: (t) => void process.stderr.write(t),
        readStdin: async () => "",
        env: process.env,
        signal: new AbortController().signal,
      });
      if (code !== 0) log.warn({ manifests: args.apply }, "applying the manifests failed (the cluster keeps running)");
    }

    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "stopping the cluster");
      await server.close();
      await store.close();
      await etcd.stop();
      process.exit(0);
    };
    process.on("SIGINT", () => void stop("SIGINT"));
    process.on("SIGTERM", () => void stop("SIGTERM"));
  }),
});
