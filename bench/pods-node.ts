// One real node for `bench pods`: containerd + runc (the test harness's: temp dir, its own socket
// and namespace), the busybox-static image imported, the CNI bridge network (bridge + host-local
// + portmap, Debian's plugins) in a network namespace per pod, and the node agent IN THIS PROCESS
// with its default timings. In-process so that what the agent calls out to (network, runtime,
// containerd RPCs, apiserver calls) can be traced (pods-trace.ts) without changing agent code.
//
// Host-wide names are unique to the run, as in test/agent/cluster.ts: the CNI network and its
// bridge (`sk-t<pid><rand>`, test/network/leftovers.ts), netns `<network>-<pod uid>`, a free /24
// in 10.231.0.0/16, the containerd namespace. What a crashed run left is removed before starting;
// teardown (registered with lib/cleanup.ts, so it also runs on Ctrl-C) removes what this run made.
import { join } from "node:path";
import pino from "pino";
import { createAgent, type Agent } from "../internal/agent/agent.ts";
import { createCniNetwork, type PodNetwork } from "../internal/agent/network.ts";
import { createApiTransport } from "../internal/client/transport.ts";
import type { TestPki } from "../internal/pki/testing.ts";
import { buildBusyboxImage, type BuiltImage } from "../internal/images/busybox.ts";
import type { CniOptions } from "../internal/network/cni.ts";
import { createContainerdRuntime, type ContainerdRuntime } from "../internal/runtime/containerd/index.ts";
import { startContainerd, type ContainerdServer } from "../test/harness/containerd.ts";
import { makeTempDir, removeTempDir } from "../test/harness/tmp.ts";
import { freePodCidr, removeRun, removeUnusedPortmapChains, runName, sweepCrashedRuns } from "../test/network/leftovers.ts";
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
  await sweepCrashedRuns();
  const networkName = runName();
  const nodeName = `bench-${networkName}`;
  const podCidr = await freePodCidr();
  const ctrd = await startContainerd();
  onCleanup(() => ctrd.stop());
  const dir = makeTempDir("skiff-bench-pods-");
  onCleanup(() => removeTempDir(dir));

  const tracer = createTracer();
  const plain = createContainerdRuntime({ address: ctrd.address, namespace: ctrd.namespace });
  if (!opts.untraced) {
    tracer.containerd(plain.client);
    tracer.execs();
  }
  const runtime = opts.untraced ? plain : tracer.runtime(plain);
  const image = await buildBusyboxImage(join(dir, "image"), { name: "skiff.bench/busybox", tag: "v1" });
  await plain.importImage(image.tarPath);

  const cniOptions: CniOptions = {
    confDir: join(dir, "net.d"),
    stateDir: join(dir, "cni"),
    network: { name: networkName, bridge: networkName, podCidr },
  };
  const untraced = createCniNetwork(cniOptions);
  const network = opts.untraced ? untraced : tracer.network(untraced);
  // Whatever is still on the node once the pods are gone (or when they could not be deleted):
  // containers, then the pods' networks (netns, IPs, NAT rules), the bridge.
  onCleanup(async () => {
    for (const c of await plain.listContainers().catch(() => [])) await plain.removeContainer(c.id).catch(() => undefined);
    for (const uid of await untraced.list().catch(() => [])) await untraced.tearDown(uid).catch(() => undefined);
    await plain.close();
    await removeRun(networkName).catch(() => undefined);
    await removeUnusedPortmapChains().catch(() => undefined);
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
