// One real node for `bench pods`: the run's containerd, image and names (lib/bench-host.ts), the
// CNI bridge network (bridge + host-local + portmap, Debian's plugins) in a network namespace per
// pod, and the node agent IN THIS PROCESS with its default timings. In-process so that what the
// agent calls out to (network, runtime, containerd RPCs, apiserver calls) can be traced
// (pods-trace.ts) without changing agent code.
import { join } from "node:path";
import pino from "pino";
import { createAgent, type Agent } from "../internal/agent/agent.ts";
import { createCniNetwork, type PodNetwork } from "../internal/agent/network.ts";
import { createApiTransport } from "../internal/client/transport.ts";
import type { TestPki } from "../internal/pki/testing.ts";
import type { CniOptions } from "../internal/network/cni.ts";
import type { BuiltImage } from "../internal/images/busybox.ts";
import type { ContainerdRuntime } from "../internal/runtime/containerd/index.ts";
import type { ContainerdServer } from "../test/harness/containerd.ts";
import { startBenchHost } from "./lib/bench-host.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { createTracer, type Tracer } from "./pods-trace.ts";

export interface BenchNode {
  ctrd: ContainerdServer;
  /** The agent's runtime (traced). */
  runtime: ContainerdRuntime;
  network: PodNetwork;
  cniOptions: CniOptions;
  image: BuiltImage;
  nodeName: string;
  networkName: string;
  podCidr: string;
  dir: string;
  agent: Agent;
  tracer: Tracer;
}

export interface BenchNodeOptions {
  apiUrl: string;
  /** The run's PKI: the node connects as system:node:<its name>. */
  pki: TestPki;
  /** pino level of the agent's log (to stderr). */
  logLevel: string;
  /** The agent's resyncMs; undefined: its default. */
  resyncMs?: number;
  /** No tracing (the soak): the tracer keeps every span, which would grow this process's memory. */
  untraced?: boolean;
}

export async function startBenchNode(opts: BenchNodeOptions): Promise<BenchNode> {
  const tracer = createTracer();
  const host = await startBenchHost({
    nodeNamePrefix: "bench",
    beforeImport: (plain) => {
      if (opts.untraced) return;
      tracer.containerd(plain.client);
      tracer.execs();
    },
  });
  const { ctrd, image, nodeName, networkName, podCidr, dir, runtime: plain } = host;
  const runtime = opts.untraced ? plain : tracer.runtime(plain);
  const cniOptions: CniOptions = {
    confDir: join(dir, "net.d"),
    stateDir: join(dir, "cni"),
    network: { name: networkName, bridge: networkName, podCidr },
  };
  const untraced = createCniNetwork(cniOptions);
  const network = opts.untraced ? untraced : tracer.network(untraced);
  // The pods' networks this process set up (the host's teardown then removes containers and the bridge).
  onCleanup(async () => {
    for (const uid of await untraced.list().catch(() => [])) await untraced.tearDown(uid).catch(() => undefined);
  });

  const apiTransport = createApiTransport(opts.apiUrl, await opts.pki.nodeCredentials(nodeName));
  const agent = createAgent({
    transport: opts.untraced ? apiTransport : tracer.transport(apiTransport),
    nodeName,
    runtime,
    network,
    rootDir: join(dir, "root"),
    log: pino({ level: opts.logLevel }, pino.destination(2)),
    listen: { host: "127.0.0.1", port: 0 },
    // Nothing reads logs here: a throwaway CA for the agent's port.
    tls: await opts.pki.agentServing(nodeName),
    podCidr,
    resyncMs: opts.resyncMs,
  });
  // The agent waits for syncs under way (a container stop may wait out a grace period); the
  // teardown above must not wait for that.
  onCleanup(() => Promise.race([agent.stop(), new Promise((r) => setTimeout(r, 3000).unref())]));
  await agent.start();
  return { ctrd, runtime: plain, network: untraced, cniOptions, image, nodeName, networkName, podCidr, dir, agent, tracer };
}
