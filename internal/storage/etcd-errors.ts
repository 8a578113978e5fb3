// Mapping etcd failures onto StoreError codes: ConnectErrors from the KV calls (etcd's gRPC status
// and message, e.g. OUT_OF_RANGE "etcdserver: mvcc: required revision has been compacted") and
// etcd3 (npm) errors from the watch.

import { Code, ConnectError } from "@connectrpc/connect";
import { ClientClosedError, isRecoverableError } from "etcd3";
import { StoreError } from "./store.ts";

const COMPACTED = "required revision has been compacted";
const FUTURE = "required revision is a future revision";

// etcd server errors that mean "not now" rather than "never".
const TRANSIENT =
  /etcdserver: (request timed out|leader changed|no leader|too many requests|server stopped|request cancelled|timeout)|UNAVAILABLE|DEADLINE_EXCEEDED|ECONNREFUSED|No connection established/i;

// etcd's own words for a request over --max-request-bytes, and gRPC's for a message over its limit.
const TOO_LARGE = /request is too large|larger than max|RESOURCE_EXHAUSTED/i;

export function isCompactedError(err: unknown): boolean {
  return err instanceof Error && err.message.includes(COMPACTED);
}

export function isFutureRevisionError(err: unknown): boolean {
  return err instanceof Error && err.message.includes(FUTURE);
}

export function isUnavailableError(err: unknown): boolean {
  if (err instanceof StoreError) return err.code === "Unavailable";
  if (!(err instanceof Error)) return false;
  if (err instanceof ConnectError && (err.code === Code.Unavailable || err.code === Code.DeadlineExceeded)) return true;
  // The store never cancels its own KV calls (they carry a deadline, no signal): a Canceled one
  // is a stream reset by a connection to etcd that went away mid-call (etcd killed or restarted).
  if (err instanceof ConnectError && err.code === Code.Canceled) return true;
  return isRecoverableError(err) || err instanceof ClientClosedError || TRANSIENT.test(err.message);
}

/** Returns a StoreError (or RangeError for misuse) for err, or err itself when unknown. */
export function mapEtcdError(err: unknown, what: string): unknown {
  if (err instanceof StoreError) return err;
  if (isCompactedError(err)) return new StoreError("Compacted", `${what}: ${COMPACTED}`, { cause: err });
  if (isFutureRevisionError(err)) return new RangeError(`${what}: ${FUTURE}`, { cause: err });
  if (err instanceof Error && err.message.includes("too many operations in txn request")) {
    return new RangeError(`${what}: too many operations in one txn (etcd --max-txn-ops)`, { cause: err });
  }
  if (isUnavailableError(err)) {
    return new StoreError("Unavailable", `${what}: etcd unavailable: ${(err as Error).message}`, { cause: err });
  }
  if (err instanceof Error && TOO_LARGE.test(err.message)) return new StoreError("TooLarge", `${what}: ${err.message}`, { cause: err });
  // Any other gRPC status from etcd is not the client's to see as it is: a plain error, which the
  // apiserver answers as INTERNAL (and logs).
  if (err instanceof ConnectError) return new Error(`${what}: etcd answered ${Code[err.code]}: ${err.rawMessage}`, { cause: err });
  return err;
}
