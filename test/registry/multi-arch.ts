// Registry tests need a multi-platform image, which test/harness/images.ts (buildBusyboxImage,
// linux/amd64 only) does not build. addMultiArchIndex adds to such a layout a stand-in
// linux/arm64/v8 image (one empty-tar layer: nothing runs it) and an OCI index over both,
// named by `tag` in index.json, so `skopeo copy --all oci:DIR:<tag>` pushes the whole index.

import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface LayoutImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
}

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";

function blobPath(layoutDir: string, digest: string): string {
  return join(layoutDir, "blobs", "sha256", digest.slice("sha256:".length));
}

function writeBlob(layoutDir: string, bytes: Buffer, mediaType: string): Descriptor {
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  writeFileSync(blobPath(layoutDir, digest), bytes);
  return { mediaType, digest, size: bytes.byteLength };
}

/** The descriptors of the image whose manifest is `manifestDigest` in the layout. */
export function describeImage(layoutDir: string, manifestDigest: string): LayoutImage {
  const bytes = readFileSync(blobPath(layoutDir, manifestDigest));
  const m = JSON.parse(bytes.toString("utf8")) as { config: Descriptor; layers: Descriptor[] };
  const plain = (d: Descriptor): Descriptor => ({ mediaType: d.mediaType, digest: d.digest, size: d.size });
  return {
    manifest: { mediaType: OCI_MANIFEST, digest: manifestDigest, size: bytes.byteLength },
    config: plain(m.config),
    layers: m.layers.map(plain),
  };
}

export function addMultiArchIndex(
  layoutDir: string,
  amd64ManifestDigest: string,
  tag: string,
): { index: Descriptor; amd64: LayoutImage; arm64: LayoutImage } {
  const amd64 = describeImage(layoutDir, amd64ManifestDigest);
  const emptyTar = Buffer.alloc(1024); // two zero blocks: a valid, empty tar archive
  const layer = writeBlob(layoutDir, gzipSync(emptyTar), "application/vnd.oci.image.layer.v1.tar+gzip");
  const diffId = `sha256:${createHash("sha256").update(emptyTar).digest("hex")}`;
  const config = writeBlob(
    layoutDir,
    Buffer.from(JSON.stringify({ architecture: "arm64", variant: "v8", os: "linux", rootfs: { type: "layers", diff_ids: [diffId] } })),
    "application/vnd.oci.image.config.v1+json",
  );
  const manifest = writeBlob(
    layoutDir,
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer] })),
    OCI_MANIFEST,
  );
  const arm64: LayoutImage = { manifest, config, layers: [layer] };
  const index = writeBlob(
    layoutDir,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { ...arm64.manifest, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
          { ...amd64.manifest, platform: { os: "linux", architecture: "amd64" } },
        ],
      }),
    ),
    OCI_INDEX,
  );
  const indexJson = join(layoutDir, "index.json");
  const top = JSON.parse(readFileSync(indexJson, "utf8")) as { manifests: unknown[] };
  top.manifests.push({ ...index, annotations: { "org.opencontainers.image.ref.name": tag } });
  writeFileSync(indexJson, JSON.stringify(top));
  return { index, amd64, arm64 };
}
