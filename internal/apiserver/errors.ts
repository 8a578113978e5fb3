// Errors a user can act on: every failure leaves the apiserver as a ConnectError with the code a
// Kubernetes user would expect (NotFound, AlreadyExists, Aborted for conflicts, InvalidArgument
// with every bad field path), never a bare Internal for a user mistake.
import { Code, ConnectError } from "@connectrpc/connect";
import { StoreError } from "../storage/store.ts";
import type { Violation } from "../api/validation.ts";

export function invalid(what: string, violations: Violation[]): ConnectError {
  const lines = violations.map((v) => `${v.field}: ${v.message}`);
  return new ConnectError(`${what} is invalid: ${lines.join("; ")}`, Code.InvalidArgument);
}

export function notFound(kind: string, name: string): ConnectError {
  return new ConnectError(`${kind.toLowerCase()} "${name}" not found`, Code.NotFound);
}

/** Turns storage errors into API errors; anything else passes through unchanged. */
export function fromStoreError(err: unknown, kind: string, name: string): unknown {
  if (!(err instanceof StoreError)) return err;
  switch (err.code) {
    case "NotFound":
      return notFound(kind, name);
    case "AlreadyExists":
      return new ConnectError(`${kind.toLowerCase()} "${name}" already exists`, Code.AlreadyExists);
    case "Conflict":
      return conflict(kind, name);
    case "Compacted":
      return new ConnectError(
        `resource version ${err.compactRevision ?? ""} is too old (compacted): list again and watch from the new resource version`,
        Code.OutOfRange,
      );
    case "Unavailable":
      return new ConnectError(`storage unavailable: ${err.message}`, Code.Unavailable);
  }
  return err;
}

export function conflict(kind: string, name: string): ConnectError {
  return new ConnectError(
    `operation cannot be fulfilled on ${kind.toLowerCase()} "${name}": the object has been modified; read it again and retry with the new resource version`,
    Code.Aborted,
  );
}
