// Drop-in replacements for protobuf-es fromBinary / toBinary / clone with identical results,
// several times faster on Skiff's message types (see README.md).
import { clone, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { compiledDecoder } from "./decode.ts";
import { compiledEncoder } from "./encode.ts";
import { compiledCloner } from "./clone.ts";
import { Writer } from "./writer.ts";
import { isCompilable } from "./support.ts";

/** How often each path ran in this process (tests check the compiled path really ran). */
export const codecStats = { decoded: 0, decodeFallbacks: 0, encoded: 0, encodeFallbacks: 0, cloned: 0, cloneFallbacks: 0 };

/** Types whose code could not be compiled (node run with --disallow-code-generation-from-strings). */
const notCompiled = new WeakSet<DescMessage>();

/** The compiled functions of a type, or undefined when protobuf-es is to handle it. */
function compiled<Cell>(schema: DescMessage, compile: (desc: DescMessage) => Cell): Cell | undefined {
  if (notCompiled.has(schema) || !isCompilable(schema)) return undefined;
  try {
    return compile(schema);
  } catch {
    notCompiled.add(schema); // protobuf-es needs no code generation: it handles this type from now on
    return undefined;
  }
}

/** Like protobuf-es fromBinary(schema, bytes): the same message, or the same error. */
export function decodeMessage<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  const cell = compiled(schema, compiledDecoder);
  if (!cell) {
    codecStats.decodeFallbacks++;
    return fromBinary(schema, bytes);
  }
  try {
    const nb = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const msg = cell.decode(new BinaryReader(bytes), nb, bytes.byteLength, 1, undefined);
    codecStats.decoded++;
    return msg;
  } catch {
    // Input the compiled code does not handle (unknown fields, unusual encodings) or invalid
    // input: protobuf-es decides, with its own result or error.
    codecStats.decodeFallbacks++;
    return fromBinary(schema, bytes);
  }
}

/** One scratch buffer reused by every encode (encoding is synchronous); copied out at the end. */
let scratch: Writer | undefined = new Writer(64 * 1024);

/** Like protobuf-es toBinary(schema, message): the same bytes, or the same error. */
export function encodeMessage<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Uint8Array {
  const msg = message as { $typeName?: string };
  const cell = msg.$typeName === schema.typeName ? compiled(schema, compiledEncoder) : undefined;
  if (!cell) {
    codecStats.encodeFallbacks++;
    return toBinary(schema, message);
  }
  const w = scratch ?? new Writer(1024);
  scratch = undefined; // taken: a nested call (a getter on the message) gets its own
  w.pos = 0;
  try {
    cell.encode(w, message);
    codecStats.encoded++;
    return w.finish();
  } catch {
    // A value protobuf-es would coerce or refuse, or $unknown fields: it decides.
    codecStats.encodeFallbacks++;
    return toBinary(schema, message);
  } finally {
    // Keep the scratch buffer unless one message made it huge.
    if (w.buf.length <= 1024 * 1024) scratch = w;
  }
}

/** Like protobuf-es clone(schema, message): an equal message sharing no mutable object, or the same error. */
export function cloneMessage<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): MessageShape<Desc> {
  const cell = compiled(schema, compiledCloner);
  if (cell) {
    try {
      const copy = cell.clone(message);
      codecStats.cloned++;
      return copy;
    } catch {
      // a value protobuf-es' reflection would refuse or convert: it decides
    }
  }
  codecStats.cloneFallbacks++;
  return clone(schema, message);
}
