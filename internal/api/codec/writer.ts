// The byte buffer the compiled encoder writes into: grows by doubling, length prefixes reserved
// as one byte and widened when a body turns out longer (as protobuf-es' BinaryWriter does, so
// the bytes come out the same: minimal varints everywhere).
import { protoInt64 } from "@bufbuild/protobuf";

export class Writer {
  buf: Uint8Array;
  nb: Buffer; // the same memory, for Buffer's native UTF-8 writer
  view: DataView;
  pos = 0;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.nb = Buffer.from(this.buf.buffer, 0, size);
    this.view = new DataView(this.buf.buffer);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let len = this.buf.length * 2;
    while (len < this.pos + n) len *= 2;
    const next = new Uint8Array(len);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.nb = Buffer.from(next.buffer, 0, len);
    this.view = new DataView(next.buffer);
  }

  /** A non-negative 32-bit varint (tags, lengths, uint32). */
  u32(v: number): void {
    this.ensure(5);
    const b = this.buf;
    let p = this.pos;
    while (v > 0x7f) {
      b[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  /** int32 / enum: negatives sign-extended to ten bytes. */
  i32(v: number): void {
    if (v >= 0) return this.u32(v);
    this.ensure(10);
    const b = this.buf;
    for (let i = 0; i < 9; i++) {
      b[this.pos++] = (v & 0x7f) | 0x80;
      v >>= 7;
    }
    b[this.pos++] = 1;
  }

  varint64(lo: number, hi: number): void {
    this.ensure(10);
    const b = this.buf;
    while (hi !== 0 || lo >>> 0 > 0x7f) {
      b[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    b[this.pos++] = lo;
  }

  i64(v: unknown): void {
    const t = protoInt64.enc(v as bigint);
    this.varint64(t.lo, t.hi);
  }

  u64(v: unknown): void {
    const t = protoInt64.uEnc(v as bigint);
    this.varint64(t.lo, t.hi);
  }

  s64(v: unknown): void {
    const t = protoInt64.enc(v as bigint);
    const sign = t.hi >> 31;
    this.varint64((t.lo << 1) ^ sign, ((t.hi << 1) | (t.lo >>> 31)) ^ sign);
  }

  fixed64(v: unknown, signed: boolean): void {
    const t = signed ? protoInt64.enc(v as bigint) : protoInt64.uEnc(v as bigint);
    this.ensure(8);
    this.view.setInt32(this.pos, t.lo, true);
    this.view.setInt32(this.pos + 4, t.hi, true);
    this.pos += 8;
  }

  /** A length-delimited UTF-8 string (lone surrogates become U+FFFD, as TextEncoder does). */
  str(s: string): void {
    const len = s.length;
    if (len <= 42) {
      // ASCII fits one byte per unit, and at most 126 bytes: a one-byte prefix.
      this.ensure(len + 1);
      const b = this.buf;
      const start = this.pos;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        b[start + 1 + i] = c;
      }
      if (i === len) {
        b[start] = len;
        this.pos = start + 1 + len;
        return;
      }
    }
    const bytes = Buffer.byteLength(s, "utf8");
    this.u32(bytes);
    this.ensure(bytes);
    this.nb.write(s, this.pos, bytes, "utf8");
    this.pos += bytes;
  }

  bytes(v: Uint8Array): void {
    this.u32(v.byteLength);
    this.ensure(v.byteLength);
    this.buf.set(v, this.pos);
    this.pos += v.byteLength;
  }

  /** Reserves a one-byte length prefix; returns where the body starts. */
  fork(): number {
    this.ensure(1);
    this.pos++;
    return this.pos;
  }

  /** Writes the length of the body started at `start`, widening the prefix if needed. */
  join(start: number): void {
    const len = this.pos - start;
    if (len < 0x80) {
      this.buf[start - 1] = len;
      return;
    }
    const size = len < 0x4000 ? 2 : len < 0x200000 ? 3 : len < 0x10000000 ? 4 : 5;
    this.ensure(size - 1);
    this.buf.copyWithin(start - 1 + size, start, this.pos);
    this.pos = start - 1;
    this.u32(len);
    this.pos += len;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}
