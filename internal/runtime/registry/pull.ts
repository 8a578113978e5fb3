// pullToSink: one image from an OCI/Docker v2 registry into a BlobSink (containerd's content
// store, or an in-memory one in tests). See README.md for the flow.

import type { BlobDescriptor, BlobSink } from "../containerd/content.ts";
import type { PullOptions } from "../runtime.ts";
import { digestOf, verifyStream } from "./digest.ts";
import { RegistryError } from "./errors.ts";
import {
  childLabels,
  DEFAULT_PLATFORM,
  GC_LABELS,
  isIndexType,
  isManifestType,
  MANIFEST_ACCEPT,
  MAX_MANIFEST_BYTES,
  parseManifest,
  plain,
  selectPlatform,
  type ParsedManifest,
  type Platform,
} from "./manifest.ts";
import { manifestReference, parseReference } from "./reference.ts";
import { createTransport, type Transport } from "./transport.ts";

export interface PullToSinkOptions extends PullOptions {
  /** Which manifest of an index to pull. Default linux/amd64. */
  platform?: Platform;
  /** Blobs (layers) fetched at the same time. Default 3. */
  concurrency?: number;
}

export interface PullResult {
  /** Normalized name, e.g. "docker.io/library/busybox:latest" (containerd's image name). */
  name: string;
  /** What the reference points at: the index, or the manifest when there is no index. */
  target: BlobDescriptor;
  /** The platform's image manifest (equal to target without an index). */
  manifest: BlobDescriptor;
  /** The image config; its digest is the image ID. */
  config: BlobDescriptor;
}

/** Nested indexes followed at most this deep (an index of indexes is legal, and rare). */
const MAX_INDEX_DEPTH = 3;

interface Fetched {
  desc: BlobDescriptor;
  bytes: Uint8Array;
  parsed: ParsedManifest;
}

async function readBounded(res: Response, max: number, what: string): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length") ?? NaN);
  if (declared > max) {
    await res.body?.cancel().catch(() => {});
    throw new RegistryError("BadManifest", `${what}: ${declared} bytes, more than the ${max} a manifest may have`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (res.body) {
    for await (const chunk of res.body) {
      size += chunk.byteLength;
      if (size > max) throw new RegistryError("BadManifest", `${what}: more than the ${max} bytes a manifest may have`);
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks);
}

/**
 * GETs a manifest or index by tag or digest and checks its exact bytes: against `expected`
 * (a descriptor from a parent index, or the reference's digest), else against the registry's
 * Docker-Content-Digest header when it sends one.
 */
async function fetchManifest(
  transport: Transport,
  repoPath: string,
  reference: string,
  expected: { digest: string; size?: number; mediaType?: string } | undefined,
  prefix: string,
): Promise<Fetched> {
  const res = await transport.get(`/v2/${repoPath}/manifests/${reference}`, { accept: MANIFEST_ACCEPT }, "");
  const what = `${prefix}: manifest ${reference}`;
  const bytes = await readBounded(res, MAX_MANIFEST_BYTES, what);
  const headerDigest = res.headers.get("docker-content-digest") ?? undefined;
  const want = expected?.digest ?? headerDigest;
  const digest = digestOf(bytes, want ?? "sha256:");
  if (want !== undefined && digest !== want) {
    throw new RegistryError("DigestMismatch", `${what}: digest mismatch: got ${digest}, want ${want}`);
  }
  if (expected?.size !== undefined && expected.size !== bytes.byteLength) {
    throw new RegistryError("DigestMismatch", `${what}: got ${bytes.byteLength} bytes, descriptor says ${expected.size}`);
  }
  // Some registries answer by-digest GETs as application/octet-stream: then the parent's word counts.
  const header = res.headers.get("content-type") ?? undefined;
  const known = header !== undefined && (isIndexType(header.split(";")[0].trim()) || isManifestType(header.split(";")[0].trim()));
  const contentType = known ? header : (expected?.mediaType ?? header);
  const parsed = parseManifest(bytes, contentType, what);
  return { desc: { mediaType: parsed.mediaType, digest, size: bytes.byteLength }, bytes, parsed };
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/**
 * Runs `fn` over items, at most `limit` at a time. After a failure no new item starts; the
 * first failure is thrown once the running ones have settled (no write outlives the pull).
 */
async function forEachLimit<T>(items: T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const i = next++;
      try {
        await fn(items[i], i);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.err;
}

export async function pullToSink(ref: string, sink: BlobSink, opts: PullToSinkOptions = {}): Promise<PullResult> {
  const prefix = `pull ${ref}`;
  let image;
  try {
    image = parseReference(ref);
  } catch (err) {
    if (err instanceof RegistryError) throw new RegistryError(err.reason, `${prefix}: ${err.message}`);
    throw err;
  }
  const transport = createTransport({
    domain: image.domain,
    repository: image.path,
    auth: opts.auth,
    insecureRegistries: opts.insecureRegistries,
    signal: opts.signal,
    errorPrefix: prefix,
  });
  const platform = opts.platform ?? DEFAULT_PLATFORM;
  const source = { [GC_LABELS.distributionSource(image.domain)]: image.path };

  // 1. Resolve: the reference's manifest, then down through indexes to the platform's manifest.
  const expectedTop = image.digest ? { digest: image.digest } : undefined;
  const top = await fetchManifest(transport, image.path, manifestReference(image), expectedTop, prefix);
  const chain: Fetched[] = [top];
  let current = top;
  while (current.parsed.kind === "index") {
    if (chain.length > MAX_INDEX_DEPTH) {
      throw new RegistryError("BadManifest", `${prefix}: indexes nested deeper than ${MAX_INDEX_DEPTH}`);
    }
    const chosen = selectPlatform(current.parsed.manifests, platform, `${prefix}: manifest ${current.desc.digest}`);
    current = await fetchManifest(transport, image.path, chosen.digest, chosen, prefix);
    chain.push(current);
  }
  const manifest = current;
  if (manifest.parsed.kind !== "manifest") throw new Error("unreachable: resolved to an index");
  const { config, layers } = manifest.parsed;

  // 2. Blobs, children before parents: layers and config (unless the sink has them), then the
  //    manifest and the indexes, which carry the GC labels that reference them.
  const fetchBlob = async (desc: BlobDescriptor, labels: Record<string, string>) => {
    if (await sink.has(desc.digest)) return;
    const what = `blob ${desc.digest}`;
    const res = await transport.get(`/v2/${image.path}/blobs/${desc.digest}`, {}, what);
    const verified = verifyStream(res.body ?? once(new Uint8Array()), desc, `${prefix}: ${what}`);
    try {
      await sink.write(plain(desc), verified.body, labels);
    } catch (err) {
      throw verified.failure() ?? err;
    } finally {
      // If the sink stopped reading early, close the generator and the HTTP body under it.
      const iterator = verified.body as AsyncGenerator<Uint8Array>;
      await iterator.return(undefined).catch(() => {});
      if (res.body && !res.body.locked) await res.body.cancel().catch(() => {});
    }
    const failure = verified.failure();
    if (failure) throw failure;
  };

  // A manifest may list the same layer twice: fetch it once.
  const uniqueLayers = [...new Map(layers.map((l) => [l.digest, l])).values()];
  await forEachLimit(uniqueLayers, opts.concurrency ?? 3, (layer) => fetchBlob(layer, source));
  await fetchBlob(config, source);
  for (const fetched of chain.toReversed()) {
    const labels = { ...source, ...childLabels(fetched.parsed) };
    await sink.write(fetched.desc, once(fetched.bytes), labels);
  }

  return { name: image.name, target: top.desc, manifest: manifest.desc, config: plain(config) };
}
