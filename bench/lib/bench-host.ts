// The host side of a benchmark's one real node, shared by `bench pods` (the agent in the
// benchmark's process) and `bench soak` (the agent as a `skiff agent` child): containerd + runc
// (the test harness's: temp dir, its own socket and namespace), the busybox-static image imported,
// and names scoped to the run as in test/agent/cluster.ts — the CNI network and its bridge
// (`sk-t<pid><rand>`, test/network/leftovers.ts), netns `<network>-<pod uid>`, a free /24 in
// 10.231.0.0/16. What a crashed run left is removed before starting; the teardown (registered with
// cleanup.ts, so it also runs on Ctrl-C) removes what this run made.
import { join } from "node:path";
import { buildBusyboxImage, type BuiltImage } from "../../internal/images/busybox.ts";
import { removeMasquerade } from "../../internal/network/masquerade.ts";
import { createContainerdRuntime, type ContainerdRuntime } from "../../internal/runtime/containerd/index.ts";
import { startContainerd, type ContainerdServer } from "../../test/harness/containerd.ts";
import { makeTempDir, removeTempDir } from "../../test/harness/tmp.ts";
import { freePodCidr, removeRun, removeUnusedPortmapChains, runName, sweepCrashedRuns } from "../../test/network/leftovers.ts";
import { onCleanup } from "./cleanup.ts";

export interface BenchHost {
  ctrd: ContainerdServer;
  /** A runtime on the run's containerd namespace, for the benchmark's own use (not the agent's). */
  runtime: ContainerdRuntime;
  image: BuiltImage;
  nodeName: string;
  networkName: string;
  podCidr: string;
  /** The run's temp dir (removed at the end). */
  dir: string;
}

export async function startBenchHost(opts: {
  /** The node's name is `<prefix>-<network name>`. */
  nodeNamePrefix: string;
  /** Called with the runtime before the image is imported (a tracer hooks its client there). */
  beforeImport?: (runtime: ContainerdRuntime) => void;
}): Promise<BenchHost> {
  await sweepCrashedRuns();
  const networkName = runName();
  const nodeName = `${opts.nodeNamePrefix}-${networkName}`;
  const podCidr = await freePodCidr();
  const ctrd = await startContainerd();
  onCleanup(() => ctrd.stop());
  const dir = makeTempDir(`skiff-bench-${opts.nodeNamePrefix}-`);
  onCleanup(() => removeTempDir(dir));

  const runtime = createContainerdRuntime({ address: ctrd.address, namespace: ctrd.namespace });
  opts.beforeImport?.(runtime);
  const image = await buildBusyboxImage(join(dir, "image"), { name: "skiff.bench/busybox", tag: "v1" });
  await runtime.importImage(image.tarPath);
  // Whatever is still on the node when the run stops (an agent leaves containers running on
  // SIGTERM, as on a real node): containers, then the run's networks (netns, IPs, NAT rules).
  onCleanup(async () => {
    for (const c of await runtime.listContainers().catch(() => [])) await runtime.removeContainer(c.id).catch(() => undefined);
    await runtime.close();
    await removeRun(networkName).catch(() => undefined);
    await removeMasquerade(networkName).catch(() => undefined);
    await removeUnusedPortmapChains().catch(() => undefined);
  });
  return { ctrd, runtime, image, nodeName, networkName, podCidr, dir };
}
