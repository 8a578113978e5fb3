// Unpacking an image into snapshots: one committed snapshot per layer, named by its chain ID,
// each the previous one plus the layer applied by containerd's differ. A container's rootfs is
// then a fresh active snapshot on top of the last chain ID.
//
//   Stat(chainID) exists? → skip the layer
//   Prepare("extract-… chainID", parent) → mounts → Diff/Apply(layer, mounts) → digest == diff_id?
//   Commit(chainID, key)   (ALREADY_EXISTS: someone else won → Remove our key)
//
// Must run inside a lease (the extract snapshots and the committed ones are unreferenced until
// the config blob's gc.ref.snapshot label points at the top one).

import { randomBytes } from "node:crypto";
import type { Services } from "./client.ts";
import type { ContentStore } from "./content.ts";
import { ignoreNotFound, isAlreadyExists, isNotFound } from "./errors.ts";
import type { ResolvedImage } from "./images.ts";
import { chainIds } from "./oci.ts";

export const LABEL_UNCOMPRESSED = "containerd.io/uncompressed";
export const gcSnapshotLabel = (snapshotter: string) => `containerd.io/gc.ref.snapshot.${snapshotter}`;

async function exists(svc: Services, snapshotter: string, key: string): Promise<boolean> {
  try {
    await svc.snapshots.stat({ snapshotter, key });
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Unpacks every layer not yet unpacked; returns the top chain ID (the rootfs parent). */
export async function unpackImage(svc: Services, content: ContentStore, img: ResolvedImage, snapshotter: string): Promise<string> {
  const { diffIds } = img.configFile;
  const chain = chainIds(diffIds);
  if (chain.length === 0) throw new Error(`image config ${img.config.digest} has no layers`);
  for (let i = 0; i < chain.length; i++) {
    const chainId = chain[i];
    if (await exists(svc, snapshotter, chainId)) continue;
    const layer = img.layers[i];
    const key = `extract-${Date.now()}-${randomBytes(4).toString("hex")} ${chainId}`;
    const parent = i > 0 ? chain[i - 1] : "";
    const { mounts } = await svc.snapshots.prepare({ snapshotter, key, parent });
    let committed = false;
    try {
      const { applied } = await svc.diff.apply({
        diff: { mediaType: layer.mediaType, digest: layer.digest, size: BigInt(layer.size), annotations: layer.annotations ?? {} },
        mounts,
      });
      if (applied?.digest !== diffIds[i]) {
        throw new Error(`layer ${layer.digest}: unpacked to ${applied?.digest}, but the image config says diff_id ${diffIds[i]}`);
      }
      try {
        await svc.snapshots.commit({ snapshotter, name: chainId, key });
        committed = true;
      } catch (err) {
        if (!isAlreadyExists(err)) throw err; // else: a concurrent unpack committed it first
      }
    } finally {
      if (!committed) await ignoreNotFound(() => svc.snapshots.remove({ snapshotter, key })).catch(() => {});
    }
    await content.setLabels(layer.digest, { [LABEL_UNCOMPRESSED]: diffIds[i] });
  }
  const top = chain[chain.length - 1];
  await content.setLabels(img.config.digest, { [gcSnapshotLabel(snapshotter)]: top });
  return top;
}

/** The top chain ID of an image, if it is fully unpacked. */
export async function unpackedTop(svc: Services, img: ResolvedImage, snapshotter: string): Promise<string | undefined> {
  const chain = chainIds(img.configFile.diffIds);
  const top = chain.at(-1);
  return top !== undefined && (await exists(svc, snapshotter, top)) ? top : undefined;
}
