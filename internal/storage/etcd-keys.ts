// Byte-level helpers shared by the etcd store and its watch.

/** The byte range [key, end) holding every key that starts with `prefix` (end "\0" = no limit). */
export function prefixRange(prefix: Buffer): { key: Buffer; range_end: Buffer } {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return { key: prefix.length ? prefix : Buffer.from([0]), range_end: end.subarray(0, i + 1) };
    }
  }
  return { key: prefix.length ? prefix : Buffer.from([0]), range_end: Buffer.from([0]) };
}

/**
 * A value's bytes as a plain Uint8Array (plain type, so deep equality matches memory) that owns
 * its memory. gRPC hands values out as views into its 64 KiB receive buffers: keeping such a view
 * (the watch cache keeps each event's bytes) would keep the whole buffer alive, ~7 KiB per 1 KB
 * value, so a view into a larger buffer is copied out.
 */
export function bytes(b: Uint8Array | undefined): Uint8Array {
  if (!b) return new Uint8Array(0);
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) return new Uint8Array(b.buffer, 0, b.byteLength);
  return new Uint8Array(b);
}
