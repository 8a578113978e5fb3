// Ends long-lived requests (watches) whose caller lost access. A watch is authorized once, when
// it starts; when the policy changes (a binding deleted, a role edited, a pod unbound from a
// node) every open watch is checked again and those now refused are ended with
// PERMISSION_DENIED, so nothing more reaches a caller who may no longer see it.
//
//   pipeline: authorize(attrs) ─► allowed ─► revoker.track(attrs, end) ─► stream … ─► untrack()
//   policy change ─► (coalesced) re-check every tracked watch ─► refused ─► end(error)
import { Code, ConnectError } from "@connectrpc/connect";
import { forbiddenMessage } from "./rbac/rules.ts";
import type { Authorizer, PolicySource, RequestAttributes } from "./types.ts";

export interface AccessRevoker {
  /** Follows an open watch; `end` is called at most once, with the error to end it with. Returns untrack. */
  track(attrs: RequestAttributes, end: (err: ConnectError) => void): () => void;
  /** How many watches are tracked. */
  size(): number;
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

  function recheck(): void {
    timer = undefined;
    for (const w of open) {
      const d = authorizer.authorize(w.attrs);
      if (d.decision === "allow") continue;
      open.delete(w);
      w.end(new ConnectError(`${forbiddenMessage(w.attrs, d.reason)} (access was revoked while the watch was open)`, Code.PermissionDenied));
    }
  }
  const off = authorizer.onPolicyChange(() => {
    if (open.size > 0) timer ??= setTimeout(recheck, coalesceMs);
  });

  return {
    track(attrs, end) {
      const w = { attrs, end };
      open.add(w);
      return () => void open.delete(w);
    },
    size: () => open.size,
    close() {
      off();
      clearTimeout(timer);
      open.clear();
    },
  };
}
