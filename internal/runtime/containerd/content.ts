// The content store: blobs (layers, configs, manifests, indexes) addressed by digest, written
// through containerd's Content service. `BlobSink` is the narrow interface the registry client
// (internal/runtime/registry) and the OCI layout importer stream blobs into.

import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { WriteAction, type WriteContentRequestSchema } from "../../../gen/containerd/services/content/v1/content_pb.js";
import type { Services } from "./client.ts";
import { codeOf, isAlreadyExists, orUndefined } from "./errors.ts";
import { createPushQueue } from "./push-queue.ts";

export interface BlobDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface BlobSink {
  has(digest: string): Promise<boolean>;
  /** Streams a blob into the content store; verifies size and digest; idempotent. */
  write(desc: BlobDescriptor, body: AsyncIterable<Uint8Array>, labels?: Record<string, string>): Promise<void>;
}

/** The content store as Skiff uses it: a BlobSink plus reads and labels. */
export interface ContentStore extends BlobSink {
  info(digest: string): Promise<{ digest: string; size: number; labels: Record<string, string> } | undefined>;
  /** The whole blob (manifests, configs: small ones). */
  read(digest: string): Promise<Uint8Array>;
  /** Sets (merges) labels on a committed blob, e.g. GC references. */
  setLabels(digest: string, labels: Record<string, string>): Promise<void>;
}

/** Largest data message sent to Content/Write. */
const CHUNK_BYTES = 1024 * 1024;
/** How long to wait for another writer of the same blob (containerd: "ref … locked"). */
const LOCKED_RETRY_MS = 60_000;

const DIGEST_RE = /^(sha256|sha512):([a-f0-9]+)$/;

function algorithmOf(digest: string): string {
  const m = DIGEST_RE.exec(digest);
  if (!m || m[2].length !== (m[1] === "sha256" ? 64 : 128)) throw new Error(`unsupported or malformed digest "${digest}"`);
  return m[1];
}

/** Re-slices a byte stream into chunks of at most `max` bytes. */
async function* rechunk(body: AsyncIterable<Uint8Array>, max: number): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) {
    for (let off = 0; off < chunk.byteLength; off += max) yield chunk.subarray(off, Math.min(off + max, chunk.byteLength));
  }
}

type WriteInit = MessageInitShape<typeof WriteContentRequestSchema>;

class LockedError extends Error {}

export function createContentStore(svc: Pick<Services, "content">): ContentStore {
  const info: ContentStore["info"] = async (digest) => {
    const res = await orUndefined(() => svc.content.info({ digest }));
    if (!res?.info) return undefined;
    return { digest: res.info.digest, size: Number(res.info.size), labels: { ...res.info.labels } };
  };

  const setLabels: ContentStore["setLabels"] = async (digest, labels) => {
    const keys = Object.keys(labels);
    if (keys.length === 0) return;
    await svc.content.update({ info: { digest, labels }, updateMask: { paths: keys.map((k) => `labels.${k}`) } });
  };

  /** One Write stream; throws LockedError before consuming `body` when another writer holds the ref. */
  const writeOnce = async (desc: BlobDescriptor, body: AsyncIterable<Uint8Array>, labels: Record<string, string>) => {
    const ref = `skiff-${desc.digest}`;
    const total = BigInt(desc.size);
    const queue = createPushQueue<WriteInit>();
    const responses = svc.content.write(queue)[Symbol.asyncIterator]();
    const send = async (msg: WriteInit) => {
      queue.push(msg);
      const r = await responses.next();
      if (r.done) throw new Error(`content write ${desc.digest}: stream closed early`);
      return r.value;
    };
    let started = false;
    try {
      try {
        await send({ action: WriteAction.STAT, ref, total, expected: desc.digest });
      } catch (err) {
        if (codeOf(err) === Code.Unavailable && /locked/.test(String(err))) throw new LockedError(String(err));
        throw err;
      }
      started = true;
      const hash = createHash(algorithmOf(desc.digest));
      let offset = 0;
      for await (const chunk of rechunk(body, CHUNK_BYTES)) {
        if (offset + chunk.byteLength > desc.size) {
          throw new ConnectError(`blob ${desc.digest}: more than the expected ${desc.size} bytes`, Code.InvalidArgument);
        }
        hash.update(chunk);
        await send({ action: WriteAction.WRITE, ref, offset: BigInt(offset), data: chunk });
        offset += chunk.byteLength;
      }
      if (offset !== desc.size) {
        throw new ConnectError(`blob ${desc.digest}: got ${offset} bytes, expected ${desc.size}`, Code.InvalidArgument);
      }
      const got = `${algorithmOf(desc.digest)}:${hash.digest("hex")}`;
      if (got !== desc.digest) {
        throw new ConnectError(`blob ${desc.digest}: content has digest ${got}`, Code.InvalidArgument);
      }
      await send({ action: WriteAction.COMMIT, ref, offset: BigInt(offset), total, expected: desc.digest, labels });
      queue.end();
      while (!(await responses.next()).done);
    } catch (err) {
      queue.end();
      await responses.return?.().catch(() => {});
      if (started && !isAlreadyExists(err)) await svc.content.abort({ ref }).catch(() => {});
      throw err;
    }
  };

  const write: ContentStore["write"] = async (desc, body, labels = {}) => {
    algorithmOf(desc.digest);
    const deadline = Date.now() + LOCKED_RETRY_MS;
    for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
      if (await info(desc.digest)) return setLabels(desc.digest, labels);
      try {
        return await writeOnce(desc, body, labels);
      } catch (err) {
        // Stored meanwhile (or before: the STAT with `expected` says so): commit labels were not applied.
        if (isAlreadyExists(err)) return setLabels(desc.digest, labels);
        if (!(err instanceof LockedError) || Date.now() > deadline) throw err;
      }
      await sleep(delay);
    }
  };

  const read: ContentStore["read"] = async (digest) => {
    const chunks: Uint8Array[] = [];
    for await (const res of svc.content.read({ digest })) chunks.push(res.data);
    return Buffer.concat(chunks);
  };

  return { has: async (digest) => (await info(digest)) !== undefined, write, info, read, setLabels };
}
