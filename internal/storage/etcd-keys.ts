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

/** A plain Uint8Array view of a Buffer's bytes (same bytes, plain type, so deep equality matches memory). */
export function bytes(b: Uint8Array | undefined): Uint8Array {
  return b ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : new Uint8Array(0);
}
