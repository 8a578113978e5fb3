// Encryption at rest as a Store: objects of encrypted resources are encrypted on their way into
// storage and decrypted on their way out, on every path (get, list, writes, txns, watch). Above
// it the apiserver only ever sees plaintext protobuf, so objects.ts, the watch cache and the
// direct gRPC path's stored bytes never meet ciphertext. Other keys pass through untouched.
import { isStoreError, type DeletedKeyValue, type KeyValue, type Store, type TxnOp, type WatchEvent } from "../storage/store.ts";
import type { EncryptionState } from "./state.ts";

export function createEncryptingStore(inner: Store, state: EncryptionState): Store {
  const read = (kv: KeyValue): KeyValue => {
    const t = state.forKey(kv.key);
    return t ? { ...kv, value: t.fromStorage(kv.value, kv.key) } : kv;
  };
  const write = (key: string, value: Uint8Array): Uint8Array => state.forKey(key)?.toStorage(value, key) ?? value;
  // A conflict's current value helps the caller retry; one that cannot be read is left out.
  const readError = (err: unknown): unknown => {
    if (isStoreError(err) && err.current) {
      try {
        err.current = read(err.current);
      } catch {
        err.current = undefined;
      }
    }
    return err;
  };
  const guard = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (err) {
      throw readError(err);
    }
  };

  return {
    async get(key) {
      const kv = await inner.get(key);
      return kv && read(kv);
    },
    async list(prefix, opts) {
      const r = await inner.list(prefix, opts);
      return state.overlaps(prefix) ? { ...r, items: r.items.map(read) } : r;
    },
    count: (prefix) => inner.count(prefix),
    async create(key, value) {
      return { ...(await guard(inner.create(key, write(key, value)))), value };
    },
    async update(key, value, expectedModRevision) {
      return { ...(await guard(inner.update(key, write(key, value), expectedModRevision))), value };
    },
    async delete(key, expectedModRevision) {
      const kv = await guard(inner.delete(key, expectedModRevision));
      return { ...read(kv), deleteRevision: kv.deleteRevision };
    },
    async txn(ops) {
      const stored = ops.map((op): TxnOp => (op.op === "delete" ? op : { ...op, value: write(op.key, op.value) }));
      const r = await guard(inner.txn(stored));
      return {
        ...r,
        results: r.results.map((kv, i) => {
          const op = ops[i];
          if (op.op !== "delete") return { ...kv, value: op.value };
          const deleted = kv as DeletedKeyValue;
          return { ...read(deleted), deleteRevision: deleted.deleteRevision };
        }),
      };
    },
    watch(prefix, fromRevision, signal, opts) {
      if (!state.overlaps(prefix)) return inner.watch(prefix, fromRevision, signal, opts);
      return decryptEvents(inner.watch(prefix, fromRevision, signal, opts), state);
    },
    currentRevision: () => inner.currentRevision(),
    compact: (revision) => inner.compact(revision),
    ready: () => inner.ready(),
    close: () => inner.close(),
  };
}

async function* decryptEvents(events: AsyncIterable<WatchEvent[]>, state: EncryptionState): AsyncIterable<WatchEvent[]> {
  for await (const batch of events) {
    yield batch.map((e) => {
      const t = state.forKey(e.key);
      if (!t) return e;
      // The previous value only stands in for an object the watch cache does not know: one
      // under a retired key is dropped rather than failing the whole watch.
      let prevValue: Uint8Array | undefined;
      try {
        prevValue = e.prevValue && t.fromStorage(e.prevValue, e.key);
      } catch {
        prevValue = undefined;
      }
      return { ...e, value: e.value && t.fromStorage(e.value, e.key), prevValue };
    });
  }
}
