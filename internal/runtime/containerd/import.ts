// Importing an OCI image layout tarball (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`, plain
// or gzipped) into the content store. Blobs stream straight from the archive into
// Content/Write (the tar is read once, in any entry order); manifests and indexes are also kept
// in memory so that, once the archive is read, every parent blob can get the GC labels that
// reference its children. Returns the image records to create: one per entry of index.json
// that carries a name (`io.containerd.image.name`, or a full `org.opencontainers.image.ref.name`).
//
// Runs inside a lease (blobs are unreferenced until the image records exist).

import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";
import { childLabels, MAX_MANIFEST_BYTES, MEDIA_TYPES, parseManifest, type ParsedManifest } from "../registry/manifest.ts";
import type { BlobDescriptor, ContentStore } from "./content.ts";
import { normalizeImageName, type ImageRecord } from "./images.ts";

export const ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name";
export const ANNOTATION_OCI_REF_NAME = "org.opencontainers.image.ref.name";

const BLOB_RE = /^blobs\/(sha256|sha512)\/([a-f0-9]+)$/;

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of stream) chunks.push(c);
  return Buffer.concat(chunks);
}

async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, "r");
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(2), 0, 2, 0);
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/** The name an index.json entry is imported under, or undefined when it has none usable. */
export function imageNameOf(desc: BlobDescriptor): string | undefined {
  const a = desc.annotations ?? {};
  if (a[ANNOTATION_CONTAINERD_NAME]) return normalizeImageName(a[ANNOTATION_CONTAINERD_NAME]);
  const ref = a[ANNOTATION_OCI_REF_NAME];
  // A bare tag ("v1") in ref.name is a name only relative to a repository we do not know.
  if (!ref || !/[/:@]/.test(ref)) return undefined;
  return normalizeImageName(ref);
}

interface ArchiveContents {
  indexJson?: Buffer;
  layoutSeen: boolean;
  /** Small blobs (candidates for manifests and indexes), by digest. */
  small: Map<string, Buffer>;
  /** Every blob in the archive, by digest. */
  sizes: Map<string, number>;
}

/** One pass over the tar: every blob into the content store. */
async function readArchive(tarPath: string, content: ContentStore, what: string): Promise<ArchiveContents> {
  let source: Readable = createReadStream(tarPath);
  if (await isGzip(tarPath)) source = source.pipe(createGunzip());
  const extract = tar.extract();
  source.on("error", (err) => extract.destroy(err));
  source.pipe(extract);

  const out: ArchiveContents = { layoutSeen: false, small: new Map(), sizes: new Map() };
  let storing = false;
  try {
    for await (const entry of extract) {
      // streamx Readables, async-iterable over Buffers.
      const body = entry as unknown as AsyncIterable<Uint8Array>;
      const name = entry.header.name.replace(/^\.\//, "");
      const m = BLOB_RE.exec(name);
      if (entry.header.type === "file" && m) {
        const digest = `${m[1]}:${m[2]}`;
        const size = entry.header.size ?? 0;
        const desc = { mediaType: "application/octet-stream", digest, size };
        out.sizes.set(digest, size);
        storing = true;
        if (size <= MAX_MANIFEST_BYTES) {
          const bytes = await readAll(body);
          out.small.set(digest, bytes);
          await content.write(desc, once(bytes));
        } else {
          await content.write(desc, body);
        }
        storing = false;
      } else if (name === "index.json") {
        out.indexJson = await readAll(body);
      } else if (name === "oci-layout") {
        out.layoutSeen = true;
      }
      // Drain what was not read (other files, a blob the store already had).
      for await (const _chunk of body);
    }
  } catch (err) {
    if (storing) throw err;
    throw new Error(`${what}: not a readable tar archive: ${(err as Error).message}`, { cause: err });
  }
  return out;
}

/** Reads the archive into the content store; returns the records to create. */
export async function importOciArchive(tarPath: string, content: ContentStore): Promise<ImageRecord[]> {
  const what = `import ${tarPath}`;
  const { indexJson, layoutSeen, small, sizes } = await readArchive(tarPath, content, what);

  if (!indexJson || !layoutSeen) {
    throw new Error(`${what}: not an OCI image layout (no ${indexJson ? "oci-layout" : "index.json"} in the archive)`);
  }
  const index = parseManifest(indexJson, MEDIA_TYPES.ociIndex, `${what}: index.json`);
  if (index.kind !== "index") throw new Error(`${what}: index.json is not an image index`);

  // GC labels: each stored index/manifest references its children; every child must be stored.
  const labeled = new Set<string>();
  const visit = async (desc: BlobDescriptor, from: string): Promise<void> => {
    if (labeled.has(desc.digest)) return;
    if (!sizes.has(desc.digest) && !(await content.has(desc.digest))) {
      throw new Error(`${what}: blob ${desc.digest} (referenced by ${from}) is not in the archive`);
    }
    labeled.add(desc.digest);
    if (desc.mediaType !== MEDIA_TYPES.ociIndex && desc.mediaType !== MEDIA_TYPES.ociManifest &&
        desc.mediaType !== MEDIA_TYPES.dockerManifest && desc.mediaType !== MEDIA_TYPES.dockerManifestList) return;
    const bytes = small.get(desc.digest) ?? (await content.read(desc.digest));
    const parsed: ParsedManifest = parseManifest(bytes, desc.mediaType, `${what}: ${desc.digest}`);
    const children = parsed.kind === "index" ? parsed.manifests : [parsed.config, ...parsed.layers];
    for (const child of children) await visit(child, desc.digest);
    await content.setLabels(desc.digest, childLabels(parsed));
  };

  const records: ImageRecord[] = [];
  for (const desc of index.manifests) {
    await visit(desc, "index.json");
    const name = imageNameOf(desc);
    const target: BlobDescriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
    if (name) records.push({ name, target });
  }
  if (records.length === 0) {
    throw new Error(
      `${what}: no image in index.json has a name (annotation ${ANNOTATION_CONTAINERD_NAME} or a full ${ANNOTATION_OCI_REF_NAME})`,
    );
  }
  return records;
}
