// The informer's indexed cache: objects by key, plus named indexes (value -> keys) kept current on
// every put and remove. Every informer update passes through put(), in every component (the
// hollow nodes run one per kind each), so an update whose index values did not change touches no
// index set: the values an object is filed under are compared per index, and only the ones that
// came or went are moved.
import type { ApiObject } from "../api/registry.ts";

/** Computes the values an object is indexed under (empty: not in this index). */
export type IndexFunc<T> = (obj: T) => string[];

/** `namespace/name`, or `name` for cluster-scoped objects. */
export function keyOf(obj: ApiObject): string {
  const ns = obj.metadata?.namespace ?? "";
  const name = obj.metadata?.name ?? "";
  return ns === "" ? name : `${ns}/${name}`;
}

/** The inverse of keyOf. */
export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf("/");
  return i < 0 ? { namespace: "", name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** The conventional index of objects by namespace: `byIndex(NAMESPACE_INDEX, "default")`. */
export const NAMESPACE_INDEX = "namespace";
export const namespaceIndexFunc: IndexFunc<ApiObject> = (obj) => [obj.metadata?.namespace ?? ""];

export interface IndexedStore<T extends ApiObject> {
  /** The cached objects by key: read-only for callers (use put/remove). */
  readonly items: ReadonlyMap<string, T>;
  /** Stores obj under key, re-filing it only in the indexes whose values changed. */
  put(key: string, obj: T): void;
  remove(key: string): void;
  /** Keys of the objects whose index function returned `value`. Throws for an unknown index. */
  indexKeys(indexName: string, value: string): string[];
  /** Adds indexes and files every stored object in them. Names must be new. */
  addIndexers(indexers: Record<string, IndexFunc<T>>): void;
}

interface Index<T> {
  name: string;
  fn: IndexFunc<T>;
  /** value -> keys */
  byValue: Map<string, Set<string>>;
}

const NONE: readonly string[] = [];

function sameValues(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * @param owner names the store in errors ("informer for Pod")
 * @param onIndexError an index function threw: the object is left out of that index
 */
export function createIndexedStore<T extends ApiObject>(owner: string, onIndexError: (index: string, key: string, err: unknown) => void): IndexedStore<T> {
  const items = new Map<string, T>();
  const indexes: Index<T>[] = [];
  const indexByName = new Map<string, Index<T>>();
  /** key -> the values it is filed under, per index (same order as `indexes`): one lookup per put */
  const filed = new Map<string, (readonly string[])[]>();

  function valuesOf(index: Index<T>, key: string, obj: T): readonly string[] {
    let values: string[];
    try {
      values = index.fn(obj);
    } catch (err) {
      onIndexError(index.name, key, err);
      return NONE;
    }
    if (values.length === 0) return NONE;
    return values.length === 1 ? values : [...new Set(values)];
  }

  function link(index: Index<T>, value: string, key: string): void {
    let keys = index.byValue.get(value);
    if (!keys) index.byValue.set(value, (keys = new Set()));
    keys.add(key);
  }

  function unlink(index: Index<T>, value: string, key: string): void {
    const keys = index.byValue.get(value);
    if (!keys) return;
    keys.delete(key);
    if (keys.size === 0) index.byValue.delete(value);
  }

  /** Moves key from the values `prev` to `next` in one index, touching only those that differ. */
  function refile(index: Index<T>, key: string, prev: readonly string[], next: readonly string[]): void {
    if (sameValues(prev, next)) return;
    for (const v of prev) if (!next.includes(v)) unlink(index, v, key);
    for (const v of next) if (!prev.includes(v)) link(index, v, key);
  }

  return {
    items,
    put(key, obj) {
      items.set(key, obj);
      if (indexes.length === 0) return;
      let values = filed.get(key);
      if (!values) filed.set(key, (values = indexes.map(() => NONE)));
      for (let i = 0; i < indexes.length; i++) {
        const next = valuesOf(indexes[i], key, obj);
        refile(indexes[i], key, values[i], next);
        values[i] = next;
      }
    },
    remove(key) {
      items.delete(key);
      const values = filed.get(key);
      if (!values) return;
      filed.delete(key);
      for (let i = 0; i < indexes.length; i++) refile(indexes[i], key, values[i], NONE);
    },
    indexKeys(indexName, value) {
      const index = indexByName.get(indexName);
      if (!index) throw new Error(`${owner}: no index named "${indexName}"`);
      return [...(index.byValue.get(value) ?? [])];
    },
    addIndexers(more) {
      for (const name of Object.keys(more)) {
        if (indexByName.has(name)) throw new Error(`${owner}: index "${name}" already exists`);
      }
      for (const [name, fn] of Object.entries(more)) {
        const index: Index<T> = { name, fn, byValue: new Map() };
        indexes.push(index);
        indexByName.set(name, index);
        for (const [key, obj] of items) {
          const next = valuesOf(index, key, obj);
          refile(index, key, NONE, next);
          // No entry yet: the store had no index when the object was put.
          const values = filed.get(key) ?? [];
          values.push(next);
          filed.set(key, values);
        }
      }
    },
  };
}
