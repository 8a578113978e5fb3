// Errors a user can act on: every failure leaves the apiserver as a ConnectError with the code a
// Kubernetes user would expect (NotFound, AlreadyExists, Aborted for conflicts, InvalidArgument
// with every bad field path), never a bare Internal for a user mistake. toApiError is the one
// table every handler's failure goes through, whatever the protocol (connect and the direct gRPC
// path serve the same handlers): storage and dependency texts never reach a client.
import { Code, ConnectError } from "@connectrpc/connect";
import { StoreError } from "../storage/store.ts";
import type { Violation } from "../api/validation.ts";

/** Names longer than this are shortened in messages: an error must not echo a huge input back. */
const NAME_SHOWN = 64;
/** No message leaves longer than this (gRPC carries it in a header; peers cap header size). */
const MESSAGE_MAX = 2048;

/** A name as shown in an error message: long ones cut, with their length said. */
export function displayName(name: string): string {
  if (name.length <= NAME_SHOWN) return name;
  return `${name.slice(0, NAME_SHOWN)}…(${name.length} characters)`;
}

export function invalid(what: string, violations: Violation[]): ConnectError {
  const lines = violations.map((v) => `${v.field}: ${v.message}`);
  return new ConnectError(`${what} is invalid: ${lines.join("; ")}`, Code.InvalidArgument);
}

export function notFound(kind: string, name: string): ConnectError {
  return new ConnectError(`${kind.toLowerCase()} "${displayName(name)}" not found`, Code.NotFound);
}

export const STORAGE_UNAVAILABLE = "storage unavailable: try again shortly";

/** Turns storage errors into API errors; anything else passes through unchanged. */
export function fromStoreError(err: unknown, kind: string, name: string): unknown {
  if (!(err instanceof StoreError)) return err;
  switch (err.code) {
    case "NotFound":
      return notFound(kind, name);
    case "AlreadyExists":
      return new ConnectError(`${kind.toLowerCase()} "${displayName(name)}" already exists`, Code.AlreadyExists);
    case "Conflict":
      return conflict(kind, name);
    case "Compacted":
      return new ConnectError(
        `resource version ${err.compactRevision ?? ""} is too old (compacted): list again and watch from the new resource version`,
        Code.OutOfRange,
      );
    case "Unavailable":
      return new ConnectError(STORAGE_UNAVAILABLE, Code.Unavailable);
    case "TooLarge":
      return new ConnectError(`${kind.toLowerCase()} "${displayName(name)}" is too large to store`, Code.ResourceExhausted);
  }
  return err;
}

export function conflict(kind: string, name: string): ConnectError {
  return new ConnectError(
    `operation cannot be fulfilled on ${kind.toLowerCase()} "${displayName(name)}": the object has been modified; read it again and retry with the new resource version`,
    Code.Aborted,
  );
}

/**
 * The error a client gets for any failure of a handler: API errors as they are (message capped),
 * storage errors by their meaning, anything else INTERNAL without its text (reported to
 * onInternal, for the log).
 */
export function toApiError(err: unknown, onInternal?: (err: unknown) => void): ConnectError {
  if (err instanceof StoreError) {
    const mapped = fromStoreError(err, "object", err.key?.split("/").pop() ?? "");
    if (mapped instanceof ConnectError) return mapped;
  }
  if (err instanceof ConnectError) {
    if (err.rawMessage.length <= MESSAGE_MAX) return err;
    return new ConnectError(`${err.rawMessage.slice(0, MESSAGE_MAX)}… (message cut)`, err.code, err.metadata);
  }
  onInternal?.(err);
  return new ConnectError("internal error", Code.Internal);
}

function isAsyncIterable(x: unknown): x is AsyncIterable<unknown> {
  return typeof x === "object" && x !== null && !(x instanceof Promise) && Symbol.asyncIterator in x;
}

async function* streamWithApiErrors(source: AsyncIterable<unknown>, onInternal?: (err: unknown) => void): AsyncGenerator<unknown> {
  try {
    yield* source;
  } catch (err) {
    throw toApiError(err, onInternal);
  }
}

/**
 * Handlers whose every failure, thrown, rejected or raised mid-stream, goes through toApiError.
 * For services outside service.ts (encryption, access reviews) and the RPCs inside it but Watch
 * (e.g. PodService.Log, server streaming: its stream stays a stream, not a promise of one).
 */
export function withApiErrors(handlers: Record<string, unknown>, onInternal?: (err: unknown) => void): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(handlers)) {
    const handler = fn as (req: unknown, ctx: unknown) => unknown;
    out[name] = (req: unknown, ctx: unknown) => {
      let result: unknown;
      try {
        result = handler(req, ctx);
      } catch (err) {
        return Promise.reject(toApiError(err, onInternal));
      }
      if (isAsyncIterable(result)) return streamWithApiErrors(result, onInternal);
      return Promise.resolve(result).catch((err: unknown) => {
        throw toApiError(err, onInternal);
      });
    };
  }
  return out;
}
