// The node agent a server runs next to its control plane (`skiff server` without
// --disable-agent, `skiff up`): containerd (the machine's or its own), CNI bridge networking, the
// service proxy, with the node certificate the server's PKI issues (its CA key is here).
import type { Transport } from "@connectrpc/connect";
import { join } from "node:path";
import { createAgent } from "../agent/agent.ts";
import { createCniNetwork } from "../agent/network.ts";
import { createEventRecorder } from "../client/events.ts";
import { componentLog, type Logger } from "../log/log.ts";
import type { ClusterPki } from "../pki/pki.ts";
import { createContainerdRuntime } from "../runtime/containerd/index.ts";
import { containerLogOptions, dnsOptions, loggerReportsPath, startLoggerReports } from "./agent.ts";
import { parseListen } from "./apiserver.ts";
import { useOrStartContainerd } from "./containerd-process.ts";
import { evictionOptions } from "./eviction-flags.ts";
import { agentObservability } from "./metrics-flags.ts";
import type { SharedServerFlags } from "./server-flags.ts";

export interface ServerAgent {
  stop(): Promise<void>;
}

/** Checks the agent's flags before anything starts (bad values stop the server first). */
export function checkAgentFlags(flags: SharedServerFlags): void {
  dnsOptions(flags);
  evictionOptions(flags);
  containerLogOptions(flags);
  parseListen(flags["agent-listen"]);
}

export async function startServerAgent(o: {
  flags: SharedServerFlags;
  dataDir: string;
  nodeName: string;
  pki: ClusterPki;
  transport: Transport;
  importImages?: string;
  log: Logger;
}): Promise<ServerAgent> {
  const { flags, log } = o;
  const containerd = await useOrStartContainerd(flags.containerd, o.dataDir);
  log.info({ address: containerd.address, started: containerd.started }, "containerd");
  const rootDir = join(o.dataDir, "agent");
  const runtime = createContainerdRuntime({ address: containerd.address, namespace: "skiff", containerLog: { ...containerLogOptions(flags), reportPath: loggerReportsPath(rootDir) } });
  const agentLog = componentLog(log, "agent");
  const agent = createAgent({
    transport: o.transport,
    clusterCa: o.pki.ca.cert,
    nodeName: o.nodeName,
    runtime,
    network: createCniNetwork({
      confDir: join(rootDir, "cni", "net.d"),
      stateDir: join(rootDir, "cni"),
      network: { name: "skiff", bridge: "skiff0", podCidr: flags["pod-cidr"] },
      portmap: true,
      onReattach: (podId, reason) => log.warn({ podUid: podId, reason }, "pod network no longer as set up (CNI CHECK failed); attaching it again"),
    }),
    rootDir,
    log: agentLog,
    podCidr: flags["pod-cidr"],
    proxy: { serviceCidr: flags["service-cluster-ip-range"] },
    eviction: evictionOptions(flags, containerd.started ? join(o.dataDir, "containerd", "root") : undefined),
    listen: parseListen(flags["agent-listen"]),
    tls: { ...o.pki.nodeServing[o.nodeName], clientCa: o.pki.ca.cert },
    importImages: o.importImages,
    dns: dnsOptions(flags),
    // Work queues (the agent's too) report on the controller-manager's port: one process, one set.
    ...agentObservability(o.transport, agentLog, { workQueues: false }),
  });
  await agent.start();
  const loggerReports = await startLoggerReports(rootDir, {
    runtime,
    recorder: createEventRecorder({ transport: o.transport, component: "skiff-agent", host: o.nodeName }),
    log: agentLog,
  });
  return {
    async stop() {
      await agent.stop();
      await runtime.close();
      loggerReports.close();
      await containerd.stop();
    },
  };
}
