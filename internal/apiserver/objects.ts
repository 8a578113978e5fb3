// How objects become storage keys and bytes. Objects are stored as protobuf binary without their
// resource_version, which is always the storage revision that last wrote them.
import { decodeMessage, encodeMessage } from "../api/codec/index.ts";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ApiObject, Kind } from "../api/registry.ts";
import { displayName } from "./errors.ts";
import { MAX_OBJECT_BYTES } from "./limits.ts";
import { assertPlaintext } from "../encryption/providers.ts";

const root = "/registry/";

export function keyFor(kind: Kind, namespace: string, name: string): string {
  return kind.namespaced ? `${root}${kind.plural}/${namespace}/${name}` : `${root}${kind.plural}/${name}`;
}

/** The prefix of every object of a kind, or of one namespace's objects of that kind. */
export function prefixFor(kind: Kind, namespace = ""): string {
  return kind.namespaced && namespace !== "" ? `${root}${kind.plural}/${namespace}/` : `${root}${kind.plural}/`;
}

export function objectKey(kind: Kind, obj: ApiObject): string {
  return keyFor(kind, obj.metadata?.namespace ?? "", obj.metadata?.name ?? "");
}

// The bytes an object was last encoded to or decoded from (without its resource version). The
// direct gRPC path sends them instead of encoding the object again (grpc-direct.ts): objects
// read from storage or handed back after a write are never changed afterwards, except for the
// resource version, which responses append (protobuf merges a repeated message field).
const storedBytes = new WeakMap<object, Uint8Array>();

export function bytesOf(obj: object): Uint8Array | undefined {
  return storedBytes.get(obj);
}

export function encode(kind: Kind, obj: ApiObject): Uint8Array {
  const rv = obj.metadata?.resourceVersion ?? "";
  if (obj.metadata) obj.metadata.resourceVersion = "";
  try {
    const bytes = encodeMessage(kind.schema, obj);
    // Checked here, before storage: etcd refuses larger values only after the whole request went
    // over the wire, in its own words.
    if (bytes.length > MAX_OBJECT_BYTES) {
      throw new ConnectError(
        `${kind.kind.toLowerCase()} "${displayName(obj.metadata?.name ?? "")}" is too large: ${bytes.length} bytes encoded, at most ${MAX_OBJECT_BYTES} may be stored`,
        Code.ResourceExhausted,
      );
    }
    storedBytes.set(obj, bytes);
    return bytes;
  } finally {
    if (obj.metadata) obj.metadata.resourceVersion = rv;
  }
}

export function decode(kind: Kind, value: Uint8Array, revision: number): ApiObject {
  // Ciphertext reaches here only when this apiserver does not encrypt the kind: refuse it clearly.
  assertPlaintext(value, kind.plural);
  const obj = decodeMessage(kind.schema, value) as ApiObject;
  if (obj.metadata) obj.metadata.resourceVersion = String(revision);
  storedBytes.set(obj, value);
  return obj;
}

/**
 * `obj` at another revision: a copy with its own metadata, sharing everything else (and its
 * stored bytes, which never hold the version).
 */
export function atRevision(obj: ApiObject, revision: number): ApiObject {
  const copy = { ...obj, metadata: obj.metadata ? { ...obj.metadata, resourceVersion: String(revision) } : undefined } as ApiObject;
  const bytes = storedBytes.get(obj);
  if (bytes) storedBytes.set(copy, bytes);
  return copy;
}

/** Parses a client-supplied resource version; "" means none. */
export function parseResourceVersion(rv: string): number | undefined {
  if (rv === "") return undefined;
  if (!/^\d+$/.test(rv)) throw new Error(`resource version "${displayName(rv)}" is not valid: pass one returned by the server`);
  return Number(rv);
}
