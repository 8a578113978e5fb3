// The soak's node: containerd + runc (the test harness's: temp dir, its own socket and namespace),
// the busybox-static image imported, and a real `skiff agent` as a CHILD PROCESS (cmd/skiff.ts,
// started as the apiserver child is), so that the RSS and fds the soak follows are the agent's
// alone, not the benchmark's. The agent connects with a node certificate of the run's PKI.
//
// Names are scoped to the run as in pods-node.ts: the CNI network and bridge (`sk-t<pid><rand>`,
// test/network/leftovers.ts), netns `<network>-<pod uid>`, a free /24 in 10.231.0.0/16, the
// containerd namespace. The service proxy is off (`--proxy-mode none`: its nftables table is one
// per host, and other work on this machine may hold it), as it was for the in-process agent; the
// agent's pod routing (masquerade rule of the run's network) and node DNS run as on any node.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createContainerdRuntime } from "../internal/runtime/containerd/index.ts";
import { buildBusyboxImage, type BuiltImage } from "../internal/images/busybox.ts";
import { removeMasquerade } from "../internal/network/masquerade.ts";
import { startContainerd, type ContainerdServer } from "../test/harness/containerd.ts";
import { clientCertArgs, type TestPki } from "../test/harness/pki.ts";
import { freePort, LOOPBACK } from "../test/harness/ports.ts";
import { makeTempDir, removeTempDir } from "../test/harness/tmp.ts";
import { freePodCidr, removeRun, removeUnusedPortmapChains, runName, sweepCrashedRuns } from "../test/network/leftovers.ts";
import { startSkiff, type Daemon } from "./lib/child.ts";
import { onCleanup } from "./lib/cleanup.ts";

export interface SoakNode {
  ctrd: ContainerdServer;
  image: BuiltImage;
  nodeName: string;
  networkName: string;
  /** The agent's --root-dir (pod dirs, logs, CNI state under cni/). */
  rootDir: string;
  agent: Daemon;
  /** The agent's /metrics (its port; the run's admin may read it). */
  metricsUrl: string;
}

export interface SoakNodeOptions {
  apiUrl: string;
  pki: TestPki;
  /** The agent's --log-level. */
  logLevel: string;
  /** More options for the agent child's node (e.g. V8 flags). */
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
}

export async function startSoakNode(opts: SoakNodeOptions): Promise<SoakNode> {
  await sweepCrashedRuns();
  const networkName = runName();
  const nodeName = `soak-${networkName}`;
  const podCidr = await freePodCidr();
  const ctrd = await startContainerd();
  onCleanup(() => ctrd.stop());
  const dir = makeTempDir("skiff-bench-soak-");
  onCleanup(() => removeTempDir(dir));
  const rootDir = join(dir, "root");

  const plain = createContainerdRuntime({ address: ctrd.address, namespace: ctrd.namespace });
  const image = await buildBusyboxImage(join(dir, "image"), { name: "skiff.bench/busybox", tag: "v1" });
  await plain.importImage(image.tarPath);
  // Whatever is still on the node when the run stops (the agent leaves containers running on
  // SIGTERM, as on a real node): containers, then the run's networks (netns, IPs, NAT rules).
  onCleanup(async () => {
    for (const c of await plain.listContainers().catch(() => [])) await plain.removeContainer(c.id).catch(() => undefined);
    await plain.close();
    await removeRun(networkName).catch(() => undefined);
    await removeMasquerade(networkName).catch(() => undefined);
    await removeUnusedPortmapChains().catch(() => undefined);
  });

  const pkiDir = join(dir, "pki");
  const clientArgs = clientCertArgs(opts.pki, await opts.pki.issueClient(`system:node:${nodeName}`, ["system:nodes"]), pkiDir, "node");
  const serving = await opts.pki.agentServing(nodeName);
  writeFileSync(join(pkiDir, "serving.crt"), serving.cert);
  writeFileSync(join(pkiDir, "serving.key"), serving.key, { mode: 0o600 });
  writeFileSync(join(pkiDir, "client-ca.crt"), serving.clientCa);
  const port = await freePort();
  const agent = startSkiff(
    [
      "agent", "--server", opts.apiUrl, ...clientArgs,
      "--node-name", nodeName, "--listen", `${LOOPBACK}:${port}`, "--node-ip", LOOPBACK,
      "--tls-cert-file", join(pkiDir, "serving.crt"), "--tls-private-key-file", join(pkiDir, "serving.key"), "--client-ca-file", join(pkiDir, "client-ca.crt"),
      "--containerd", ctrd.address, "--containerd-namespace", ctrd.namespace, "--image-fs-dir", ctrd.dir,
      "--root-dir", rootDir, "--pod-cidr", podCidr, "--cluster-cidr", podCidr,
      "--cni-network", networkName, "--cni-bridge", networkName,
      "--proxy-mode", "none", "--log-level", opts.logLevel,
    ],
    { nodeArgs: opts.nodeArgs, env: opts.env },
  );
  return { ctrd, image, nodeName, networkName, rootDir, agent, metricsUrl: `https://${LOOPBACK}:${port}/metrics` };
}
