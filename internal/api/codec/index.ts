// Drop-in replacements for protobuf-es fromBinary / toBinary / clone with identical results,
// several times faster on Skiff's message types (see README.md).
import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { compiledDecoder } from "./decode.ts";
import { isCompilable } from "./support.ts";

/** How often each path ran in this process (tests check the compiled path really ran). */
export const codecStats = { decoded: 0, decodeFallbacks: 0 };

/** Like protobuf-es fromBinary(schema, bytes): the same message, or the same error. */
export function decodeMessage<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  if (!isCompilable(schema)) {
    codecStats.decodeFallbacks++;
    return fromBinary(schema, bytes);
  }
  const cell = compiledDecoder(schema);
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
