// Ends long-lived requests (watches) whose caller lost access. A watch is authorized once, when
// it starts; when the policy changes (a binding deleted, a role edited, a pod unbound from a
// node) every open watch is checked again and those now refused are ended with
// PERMISSION_DENIED, so nothing more reaches a caller who may no longer see it.
//
//   pipeline: authorize(attrs) ─► allowed ─► revoker.track(attrs, end) ─► stream … ─► untrack()
//   policy change ─► (coalesced) re-check every tracked watch ─► refused ─► end(error)
//   revocable(): also re-checks before the next message after any policy change, so nothing is
//   delivered once the change is visible, even inside the coalescing window
import { Code, ConnectError } from "@connectrpc/connect";
import { forbiddenMessage } from "./rbac/rules.ts";
import type { Authorizer, PolicySource, RequestAttributes } from "./types.ts";

export interface AccessRevoker {
  /** Follows an open watch; `end` is called at most once, with the error to end it with. Returns untrack. */
  track(attrs: RequestAttributes, end: (err: ConnectError) => void): () => void;
  /** How many watches are tracked. */
  size(): number;
  /** Counts policy changes: a stream re-checks before delivering when it moved since its last check. */
  generation(): number;
  /** Authorizes again: the error to end the stream with, or undefined while still allowed. */
  recheck(attrs: RequestAttributes): ConnectError | undefined;
  close(): void;
}

export interface AccessRevokerOptions {
  /** Policy changes within this window cause one re-check (bursts of pod bindings). Default 100 ms. */
  coalesceMs?: number;
}

export function createAccessRevoker(authorizer: Authorizer & PolicySource, opts: AccessRevokerOptions = {}): AccessRevoker {
  const coalesceMs = opts.coalesceMs ?? 100;
  const open = new Set<{ attrs: RequestAttributes; end: (err: ConnectError) => void }>();
  let timer: NodeJS.Timeout | undefined;
  let generation = 0;

  function denial(attrs: RequestAttributes): ConnectError | undefined {
    const d = authorizer.authorize(attrs);
    if (d.decision === "allow") return undefined;
    return new ConnectError(`${forbiddenMessage(attrs, d.reason)} (access was revoked while the watch was open)`, Code.PermissionDenied);
  }
  function recheckAll(): void {
    timer = undefined;
    for (const w of open) {
      const err = denial(w.attrs);
      if (!err) continue;
      open.delete(w);
      w.end(err);
    }
  }
  const off = authorizer.onPolicyChange(() => {
    generation++;
    if (open.size > 0) timer ??= setTimeout(recheckAll, coalesceMs);
  });

  return {
    track(attrs, end) {
      const w = { attrs, end };
      open.add(w);
      return () => void open.delete(w);
    },
    size: () => open.size,
    generation: () => generation,
    recheck: denial,
    close() {
      off();
      clearTimeout(timer);
      open.clear();
    },
  };
}

/**
 * Passes a stream's messages through while the caller may still make the request; once a policy
 * change refuses it, ends the stream (closing the source) with the PERMISSION_DENIED error.
 * For the pipeline's server-streaming path: `yield* revocable(revoker, attrs, handler(req, ctx))`.
 */
export async function* revocable<T>(revoker: AccessRevoker, attrs: RequestAttributes, source: AsyncIterable<T>): AsyncGenerator<T> {
  let revoked: ConnectError | undefined;
  // Wakes the read in progress. One promise per read, never a race against one long-lived
  // promise: each race would add a reaction to it, holding that read's message (the whole event)
  // for as long as the stream lives — memory growing with every event a watch delivered.
  let wake: (() => void) | undefined;
  const untrack = revoker.track(attrs, (err) => {
    revoked = err;
    wake?.();
  });
  const it = source[Symbol.asyncIterator]();
  let checked = revoker.generation();
  try {
    for (;;) {
      if (revoked) throw revoked;
      const next = await new Promise<IteratorResult<T> | undefined>((resolve, reject) => {
        wake = () => resolve(undefined);
        it.next().then(resolve, reject);
      });
      wake = undefined;
      if (revoked) throw revoked;
      if (!next || next.done) return;
      // The policy changed since the last check (its change is already visible to the
      // authorizer): check before delivering anything more, not only at the coalesced re-check.
      if (checked !== revoker.generation()) {
        checked = revoker.generation();
        const err = revoker.recheck(attrs);
        if (err) throw err;
      }
      yield next.value;
    }
  } finally {
    untrack();
    // Ends the source's pending read too (the watch handler closes its cache watcher).
    void it.return?.(undefined)?.catch(() => undefined);
  }
}
