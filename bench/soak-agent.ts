// The soak's node: the run's containerd, image and names (lib/bench-host.ts, as for `bench pods`)
// and a real `skiff agent` as a CHILD PROCESS (cmd/skiff.ts, started as the apiserver child is),
// so that the RSS and fds the soak follows are the agent's alone, not the benchmark's. The agent
// connects with a node certificate of the run's PKI.
//
// The service proxy is off (`--proxy-mode none`: its nftables table is one per host, and other
// work on this machine may hold it), as it was for the in-process agent; the agent's pod routing
// (masquerade rule of the run's network) and node DNS run as on any node.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { clientCertArgs, type TestPki } from "../test/harness/pki.ts";
import { freePort, LOOPBACK } from "../test/harness/ports.ts";
import type { BuiltImage } from "../internal/images/busybox.ts";
import type { ContainerdServer } from "../test/harness/containerd.ts";
import { startBenchHost } from "./lib/bench-host.ts";
import { startSkiff, type Daemon } from "./lib/child.ts";

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
  const { ctrd, image, nodeName, networkName, podCidr, dir } = await startBenchHost({ nodeNamePrefix: "soak" });
  const rootDir = join(dir, "root");
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
