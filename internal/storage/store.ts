// The storage contract. Storage is bytes + revisions; the apiserver owns every semantic
// (object kinds, resource versions, selectors). Two implementations: memory.ts and etcd.ts,
// both checked by conformance.ts.

export interface KeyValue {
  key: string;
  /** Shared, read-only bytes: never mutate a value you got from a store. */
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
}

export type DeletedKeyValue = KeyValue & { deleteRevision: number };

/**
 * What a create or update returns: the key, the value written, the revision it was written at.
 * No createRevision: for an update etcd could tell it only by reading the key's previous version
 * (prev_kv) on every write, for a figure no writer needs (get() and watch events carry it).
 */
export type WrittenKeyValue = Omit<KeyValue, "createRevision">;

// TooLarge: storage refused a value for its size (the apiserver checks sizes first; this is the backstop).
export type StoreErrorCode = "NotFound" | "AlreadyExists" | "Conflict" | "Compacted" | "Unavailable" | "TooLarge";

export interface StoreErrorDetails {
  key?: string;
  current?: KeyValue;
  compactRevision?: number;
  cause?: unknown;
}

export class StoreError extends Error {
  code: StoreErrorCode;
  key?: string;
  /** The key's current value, on Conflict (and on AlreadyExists). */
  current?: KeyValue;
  /** The oldest revision still readable, on Compacted when the backend tells us. */
  compactRevision?: number;

  constructor(code: StoreErrorCode, message: string, details: StoreErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "StoreError";
    this.code = code;
    this.key = details.key;
    this.current = details.current;
    this.compactRevision = details.compactRevision;
  }
}

export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}

export interface WatchEvent {
  type: "put" | "delete";
  key: string;
  // Without previous values (WatchOptions), prevValue and a delete's createRevision are absent.
  /** put: the new value. */
  value?: Uint8Array;
  /** delete: the last value; put: the previous value if the key existed. */
  prevValue?: Uint8Array;
  modRevision: number;
  /** put: the key's create revision; delete: the deleted version's create revision. */
  createRevision?: number;
}

export interface WatchOptions {
  /**
   * false: events carry no previous value (prevValue, and a delete's createRevision), for a
   * watcher that keeps the current values itself (the watch cache): etcd then reads no past
   * revision per event. Default true.
   */
  prevValues?: boolean;
}

/** One write inside txn(). Every op carries its own precondition, like the single-key calls. */
export type TxnOp =
  | { op: "create"; key: string; value: Uint8Array }
  | { op: "update"; key: string; value: Uint8Array; expectedModRevision: number }
  | { op: "delete"; key: string; expectedModRevision?: number };

export interface TxnResult {
  /** The revision all writes share (the current revision when ops is empty). */
  revision: number;
  /** One entry per op, in order: the written kv, or the deleted kv for a delete. */
  results: (WrittenKeyValue | DeletedKeyValue)[];
}

export interface ListOptions {
  /** Read at this past revision (0 / absent = now). Older than the compaction point -> Compacted. */
  revision?: number;
  /** Start at this key (inclusive) rather than at the prefix: the next page of a paged read. */
  startKey?: string;
  /** At most this many items (0 / absent = every item). etcd reads in pages of its own either way. */
  limit?: number;
}

export interface ListResult {
  /** Sorted by key. */
  items: KeyValue[];
  /** The store revision the list was read at: pass it back to read the next page consistently. */
  revision: number;
  /** How many keys of the range follow the returned items (0 = this was the last page). */
  remaining: number;
}

export interface Store {
  get(key: string): Promise<KeyValue | undefined>;
  /**
   * The keys under prefix (from startKey on, at most limit of them), sorted, at one revision. A
   * startKey outside the prefix is a RangeError.
   */
  list(prefix: string, opts?: ListOptions): Promise<ListResult>;
  count(prefix: string): Promise<number>;
  /** AlreadyExists if present. */
  create(key: string, value: Uint8Array): Promise<WrittenKeyValue>;
  /** NotFound if absent; Conflict (with .current) if modRevision differs. */
  update(key: string, value: Uint8Array, expectedModRevision: number): Promise<WrittenKeyValue>;
  /** Returns the deleted kv; NotFound if absent; Conflict (with .current) if modRevision differs. */
  delete(key: string, expectedModRevision?: number): Promise<DeletedKeyValue>;
  /**
   * Several writes atomically at one revision: all preconditions hold and every op applies, or
   * nothing does and the first failing op's StoreError is thrown. A key may appear once.
   */
  txn(ops: TxnOp[]): Promise<TxnResult>;
  /**
   * Events with modRevision >= fromRevision, in order, one batch per revision (0 = from the next
   * write). Throws StoreError Compacted when fromRevision (or a slow consumer's position) falls
   * behind the compaction point, Unavailable when the backend connection is lost; ends quietly
   * when signal aborts. A list at revision R is followed by watch(prefix, R + 1).
   */
  watch(prefix: string, fromRevision: number, signal: AbortSignal, opts?: WatchOptions): AsyncIterable<WatchEvent[]>;
  currentRevision(): Promise<number>;
  /** Drop history older than revision: reads and watches at >= revision keep working. */
  compact(revision: number): Promise<void>;
  /** Backend reachable (for /readyz). Never throws. */
  ready(): Promise<boolean>;
  close(): Promise<void>;
}

/** Checks paging options; both stores refuse the same misuse. */
export function assertListOptions(prefix: string, opts: ListOptions | undefined): void {
  if (opts?.limit !== undefined) assertRevision("limit", opts.limit, 0);
  if (opts?.startKey !== undefined && !opts.startKey.startsWith(prefix)) {
    throw new RangeError(`startKey ${JSON.stringify(opts.startKey)} is outside prefix ${JSON.stringify(prefix)}`);
  }
}

/** The smallest key after `key`: where the page after one ending at `key` starts. */
export function keyAfter(key: string): string {
  return `${key}\0`;
}

export function assertRevision(name: string, revision: number, min: number): void {
  if (!Number.isSafeInteger(revision) || revision < min) {
    throw new RangeError(`${name} must be an integer >= ${min}, got ${revision}`);
  }
}

/** Rejects empty and duplicate keys (etcd refuses both) and bad revisions, in both stores. */
export function assertDistinctKeys(ops: TxnOp[]): void {
  const seen = new Set<string>();
  for (const op of ops) {
    if (op.key === "") throw new RangeError("empty key");
    if (seen.has(op.key)) throw new RangeError(`txn touches key ${JSON.stringify(op.key)} twice`);
    seen.add(op.key);
    if (op.op === "update") assertRevision("expectedModRevision", op.expectedModRevision, 1);
    if (op.op === "delete" && op.expectedModRevision !== undefined) {
      assertRevision("expectedModRevision", op.expectedModRevision, 1);
    }
  }
}

/**
 * Why a txn's preconditions failed, given each op's current kv (undefined = absent). Shared by
 * both stores so that they report the same error for the same state.
 */
export function preconditionError(op: TxnOp, current: KeyValue | undefined): StoreError | undefined {
  const key = op.key;
  if (op.op === "create") {
    return current ? new StoreError("AlreadyExists", `key ${key} already exists`, { key, current }) : undefined;
  }
  if (!current) return new StoreError("NotFound", `key ${key} not found`, { key });
  const expected = op.expectedModRevision;
  if (expected !== undefined && current.modRevision !== expected) {
    return new StoreError(
      "Conflict",
      `key ${key} was modified at revision ${current.modRevision}, expected ${expected}`,
      { key, current },
    );
  }
  return undefined;
}
