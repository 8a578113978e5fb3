// Ends long-lived requests (watches) whose caller lost access. A watch is authorized once, when
// it starts; when the policy changes (a binding deleted, a role edited, a pod unbound from a
// node) every open watch is checked again and those now refused are ended with
// PERMISSION_DENIED, so nothing more reaches a caller who may no longer see it.
//
//   pipeline: authorize(attrs) ─► allowed ─► revoker.track(attrs, end) ─► stream … ─► untrack()
//   policy change ─► (coalesced) re-check the tracked watches it may concern (all of them for
//                    an RBAC change; a node's and a pod's for a pod bound to it) ─► refused ─► end(error)
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
  /** Counts policy changes. */
  generation(): number;
  /** Whether a change that may decide this tracked request differently came after generation `seen`. */
  changedSince(attrs: RequestAttributes, seen: number): boolean;
  /** Authorizes again: the error to end the stream with, or undefined while still allowed. */
  recheck(attrs: RequestAttributes): ConnectError | undefined;
  close(): void;
}

export interface AccessRevokerOptions {
  /** Policy changes within this window cause one re-check (bursts of pod bindings). Default 100 ms. */
  coalesceMs?: number;
}

type Tracked = { attrs: RequestAttributes; end: (err: ConnectError) => void };

/** Tracked watches grouped by a key (the user, the object named), with the generation of the last change that concerned the key. */
function createGroups() {
  const members = new Map<string, Set<Tracked>>();
  const changedAt = new Map<string, number>();
  return {
    add(key: string, w: Tracked) {
      let m = members.get(key);
      if (!m) members.set(key, (m = new Set()));
      m.add(w);
    },
    delete(key: string, w: Tracked) {
      const m = members.get(key);
      if (!m?.delete(w) || m.size > 0) return;
      // Nobody left to concern: the group and its change mark go (watches tracked later check from then on).
      members.delete(key);
      changedAt.delete(key);
    },
    /** Marks a change of `key`; false when no tracked watch has that key. */
    changed(key: string, generation: number): boolean {
      if (!members.has(key)) return false;
      changedAt.set(key, generation);
      return true;
    },
    changedAt: (key: string) => changedAt.get(key) ?? 0,
    members: (key: string) => members.get(key) ?? [],
    clear() {
      members.clear();
      changedAt.clear();
    },
  };
}

const objectKey = (resource: string, namespace: string, name: string) => `${resource}/${namespace}/${name}`;
const namedObject = (a: RequestAttributes) => (a.name === "" ? undefined : objectKey(a.resource, a.namespace, a.name));

export function createAccessRevoker(authorizer: Authorizer & PolicySource, opts: AccessRevokerOptions = {}): AccessRevoker {
  const coalesceMs = opts.coalesceMs ?? 100;
  const open = new Set<Tracked>();
  const byUser = createGroups();
  const byObject = createGroups();
  let timer: NodeJS.Timeout | undefined;
  let generation = 0;
  /** The generation of the last change that concerned everyone. */
  let everyoneAt = 0;
  // What the coalesced re-check must look at: everything, or these users' and objects' watches.
  let pendingAll = false;
  const pendingUsers = new Set<string>();
  const pendingObjects = new Set<string>();

  function denial(attrs: RequestAttributes): ConnectError | undefined {
    const d = authorizer.authorize(attrs);
    if (d.decision === "allow") return undefined;
    return new ConnectError(`${forbiddenMessage(attrs, d.reason)} (access was revoked while the watch was open)`, Code.PermissionDenied);
  }
  function untrack(w: Tracked): void {
    if (!open.delete(w)) return;
    byUser.delete(w.attrs.user.name, w);
    const obj = namedObject(w.attrs);
    if (obj) byObject.delete(obj, w);
  }
  function recheckAll(): void {
    timer = undefined;
    const due = new Set<Tracked>(pendingAll ? open : []);
    if (!pendingAll) {
      for (const u of pendingUsers) for (const w of byUser.members(u)) due.add(w);
      for (const o of pendingObjects) for (const w of byObject.members(o)) due.add(w);
    }
    pendingAll = false;
    pendingUsers.clear();
    pendingObjects.clear();
    for (const w of due) {
      if (!open.has(w)) continue;
      const err = denial(w.attrs);
      if (!err) continue;
      untrack(w);
      w.end(err);
    }
  }
  const off = authorizer.onPolicyChange((scope) => {
    generation++;
    let concerns = false;
    if (!scope) {
      everyoneAt = generation;
      pendingAll = true;
      concerns = open.size > 0;
    } else {
      for (const u of scope.users) {
        if (!byUser.changed(u, generation)) continue;
        pendingUsers.add(u);
        concerns = true;
      }
      const o = scope.object && objectKey(scope.object.resource, scope.object.namespace, scope.object.name);
      if (o && byObject.changed(o, generation)) {
        pendingObjects.add(o);
        concerns = true;
      }
    }
    if (concerns) timer ??= setTimeout(recheckAll, coalesceMs);
  });

  return {
    track(attrs, end) {
      const w = { attrs, end };
      open.add(w);
      byUser.add(attrs.user.name, w);
      const obj = namedObject(attrs);
      if (obj) byObject.add(obj, w);
      return () => untrack(w);
    },
    size: () => open.size,
    generation: () => generation,
    changedSince(attrs, seen) {
      const obj = namedObject(attrs);
      return Math.max(everyoneAt, byUser.changedAt(attrs.user.name), obj ? byObject.changedAt(obj) : 0) > seen;
    },
    recheck: denial,
    close() {
      off();
      clearTimeout(timer);
      open.clear();
      byUser.clear();
      byObject.clear();
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
      if (revoker.changedSince(attrs, checked)) {
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
