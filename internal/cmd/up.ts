// `skiff up`: a whole one-machine cluster in one process (like k3s): a `skiff server
// --cluster-init` (server-run.ts: the cluster PKI under <state-dir>/pki, etcd as a child process,
// the apiserver, scheduler, controller-manager and node agent, each with its own identity) on
// loopback, plus its conveniences: the example image, skiffctl's config (an admin context) and
// manifests applied once up. Running it again finds the same cluster state, and the agent adopts
// the containers that kept running.
import { defineCommand } from "citty";
import { copyFileSync, mkdirSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { configPath, loadConfig, saveConfig, upsert, type CliConfig } from "../cli/config.ts";
import { buildBusyboxImage } from "../images/busybox.ts";
import type { ClusterPki } from "../pki/pki.ts";
import { runSkiffctl } from "../cli/main.ts";
import { createLogger } from "../log/log.ts";
import { parsePortRange, parseServiceCidr } from "../apiserver/service-alloc.ts";
import { parseListen } from "./apiserver.ts";
import { guarded } from "./guard.ts";
import { sharedServerArgs } from "./server-flags.ts";
import { checkAgentFlags } from "./server-agent.ts";
import { runServer } from "./server-run.ts";

export const upCommand = defineCommand({
  meta: { name: "up", description: "Start a one-machine Skiff cluster (etcd, control plane, node agent) in the foreground" },
  args: {
    "state-dir": { type: "string", description: "Where etcd keeps its data", default: join(homedir(), ".skiff", "state") },
    listen: { type: "string", description: "HOST:PORT for the apiserver", default: "127.0.0.1:6443" },
    apply: { type: "string", description: "Apply the manifests in this file or directory once the cluster is up" },
    ...sharedServerArgs,
  },
  run: guarded(async ({ args }) => {
    const log = createLogger("skiff", args["log-level"]);
    const listen = parseListen(args.listen);
    const stateDir = resolve(args["state-dir"]);
    parseServiceCidr(args["service-cluster-ip-range"]);
    parsePortRange(args["service-node-port-range"]);
    checkAgentFlags(args);
    const nodeName = args["node-name"] || hostname().toLowerCase();
    // The example app's image, built from Debian's busybox-static and imported by the agent.
    const imageDir = join(stateDir, "images");
    mkdirSync(imageDir, { recursive: true });
    await buildBusyboxImage(imageDir, { name: "skiff.local/busybox-httpd", tag: "v1" });

    // etcd's member keeps the name and loopback peer address clusters made by `skiff up` always had.
    const { api, pki } = await runServer({ flags: args, dataDir: stateDir, nodeName, listen, memberAddress: "127.0.0.1", memberName: "skiff", peerTls: false, agent: { importImages: imageDir }, log });

    // skiffctl finds this cluster without flags, as the admin.
    const cfgPath = configPath();
    await saveConfig(cfgPath, adminContext(await loadConfig(cfgPath), api.url, pki));
    log.info({ server: api.url, config: cfgPath }, "cluster is up; try: npx skiffctl get all -A");

    if (args.apply) {
      const code = await runSkiffctl(["apply", "-f", args.apply, "--server", api.url, "--context", ADMIN_CONTEXT], {
        out: (t) => void process.stdout.write(t),
        err: (t) => void process.stderr.write(t),
        readStdin: async () => "",
        env: process.env,
        signal: new AbortController().signal,
      });
      if (code !== 0) log.warn({ manifests: args.apply }, "some manifests could not be applied: see the errors above (the others were; the cluster keeps running)");
    }
    // From here on runServer's handlers stop the cluster (SIGINT/SIGTERM, a fatal failure).
  }),
});

const ADMIN_CONTEXT = "admin@skiff";

/**
 * Copies the CA and the admin's certificate next to skiffctl's config (~/.skiff/pki/) and makes an
 * admin context for this cluster the current one; other clusters and contexts stay.
 */
function adminContext(cfg: CliConfig, server: string, pki: ClusterPki): CliConfig {
  const dir = join(dirname(configPath()), "pki");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  copyFileSync(pki.files("ca").cert, join(dir, "ca.crt"));
  copyFileSync(pki.files("admin").cert, join(dir, "admin.crt"));
  copyFileSync(pki.files("admin").key, join(dir, "admin.key"));
  const { server: _old, ...rest } = cfg;
  return {
    ...rest,
    clusters: upsert(cfg.clusters, { name: "skiff", cluster: { server, "certificate-authority": join(dir, "ca.crt") } }),
    users: upsert(cfg.users, { name: "admin@skiff", user: { "client-certificate": join(dir, "admin.crt"), "client-key": join(dir, "admin.key") } }),
    contexts: upsert(cfg.contexts, { name: ADMIN_CONTEXT, context: { cluster: "skiff", user: "admin@skiff" } }),
    "current-context": ADMIN_CONTEXT,
  };
}
