// How many watches one owner may hold open. The owner is the client's connection today (set by
// server.ts for both protocol paths); once requests carry an authenticated user, server.ts sets
// the owner to the user's key (internal/auth/types.ts userKey) instead and this limit becomes
// per identity, with no change here.
import { Code, ConnectError, createContextKey } from "@connectrpc/connect";

/** The context value naming who a watch counts against: any value compared by identity. */
export const watchOwnerKey = createContextKey<unknown>(undefined, { description: "watch owner" });

export interface WatchLimiter {
  /** Counts one more watch against owner (none = not limited); throws RESOURCE_EXHAUSTED when over. */
  acquire(owner: unknown): () => void;
  /** Open watches of one owner. */
  count(owner: unknown): number;
}

export function createWatchLimiter(maxPerOwner: number): WatchLimiter {
  const open = new Map<unknown, number>();
  return {
    acquire(owner) {
      if (owner === undefined || maxPerOwner <= 0) return () => {};
      const n = open.get(owner) ?? 0;
      if (n >= maxPerOwner) {
        throw new ConnectError(`too many watches: ${n} open on this connection (at most ${maxPerOwner}); close some or use another connection`, Code.ResourceExhausted);
      }
      open.set(owner, n + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const left = (open.get(owner) ?? 1) - 1;
        if (left === 0) open.delete(owner);
        else open.set(owner, left);
      };
    },
    count: (owner) => open.get(owner) ?? 0,
  };
}
