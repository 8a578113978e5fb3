// An in-memory BlobSink that behaves like containerd's content store where it matters for a
// pull: it checks size and digest of every blob (a wrong one is never stored), writes are
// idempotent, and labels of a re-written blob are merged. For tests and for tools that want the
// bytes of an image without a containerd.

import type { BlobDescriptor, BlobSink } from "../containerd/content.ts";
import { digestOf } from "./digest.ts";

export interface StoredBlob {
  desc: BlobDescriptor;
  bytes: Uint8Array;
  labels: Record<string, string>;
}

export interface MemorySink extends BlobSink {
  blobs: Map<string, StoredBlob>;
  /** Digests in the order their writes completed (a re-write of a stored blob counts again). */
  writes: string[];
  /** The blob's bytes parsed as JSON (manifests, indexes, configs). */
  json(digest: string): unknown;
}

export function createMemorySink(): MemorySink {
  const blobs = new Map<string, StoredBlob>();
  const writes: string[] = [];
  return {
    blobs,
    writes,
    async has(digest) {
      return blobs.has(digest);
    },
    async write(desc, body, labels = {}) {
      const chunks: Uint8Array[] = [];
      let size = 0;
      for await (const chunk of body) {
        size += chunk.byteLength;
        if (size > desc.size) throw new Error(`memory sink: ${desc.digest}: more than ${desc.size} bytes`);
        chunks.push(chunk);
      }
      const bytes = Buffer.concat(chunks);
      if (bytes.byteLength !== desc.size) {
        throw new Error(`memory sink: ${desc.digest}: got ${bytes.byteLength} bytes, want ${desc.size}`);
      }
      const got = digestOf(bytes, desc.digest);
      if (got !== desc.digest) throw new Error(`memory sink: digest mismatch: got ${got}, want ${desc.digest}`);
      const existing = blobs.get(desc.digest);
      blobs.set(desc.digest, { desc, bytes, labels: { ...existing?.labels, ...labels } });
      writes.push(desc.digest);
    },
    json(digest) {
      const blob = blobs.get(digest);
      if (!blob) throw new Error(`memory sink: no blob ${digest}`);
      return JSON.parse(Buffer.from(blob.bytes).toString("utf8"));
    },
  };
}
