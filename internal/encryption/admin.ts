// What `skiff secrets-encrypt` asks the apiserver: which key each stored object is under, use
// the config file as it is now, and store every object again under the current write key.
// One operation at a time, so a rewrite never races a reload.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { EncryptionResourceStatusSchema, type EncryptionResourceStatus } from "../../gen/skiff/v1alpha1/encryption_service_pb.js";
import type { Logger } from "pino";
import type { Kind } from "../api/registry.ts";
import { isStoreError, type KeyValue, type Store } from "../storage/store.ts";
import { EncryptionConfigError, readEncryptionConfig } from "./config.ts";
import { IDENTITY, keyLabelOf } from "./providers.ts";
import { resolveEncryptionConfig, type EncryptedResource, type EncryptionState } from "./state.ts";

export interface EncryptionAdmin {
  status(): Promise<EncryptionResourceStatus[]>;
  /** Reads the config file again; refuses (keeping the old one) if a stored object would become unreadable. */
  reload(): Promise<EncryptionResourceStatus[]>;
  /** Stores every object not under its resource's write key again; returns how many. */
  rewrite(): Promise<number>;
}

export interface EncryptionAdminOptions {
  /** The storage underneath the encryption (sees ciphertext). */
  raw: Store;
  state: EncryptionState;
  configPath: string;
  kinds: readonly Kind[];
  log?: Logger;
}

// A rewrite that keeps losing to other writers gives up rather than spinning.
const MAX_CONFLICTS = 10;

export function createEncryptionAdmin(opts: EncryptionAdminOptions): EncryptionAdmin {
  const { raw, state } = opts;
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => undefined);
    return next;
  };

  async function status(): Promise<EncryptionResourceStatus[]> {
    const out: EncryptionResourceStatus[] = [];
    for (const r of state.resources()) {
      const { items } = await raw.list(r.prefix);
      const objectsByKey: Record<string, bigint> = {};
      for (const kv of items) {
        const label = keyLabelOf(kv.value);
        objectsByKey[label] = (objectsByKey[label] ?? 0n) + 1n;
      }
      out.push(create(EncryptionResourceStatusSchema, { resource: r.transformer.resource, writeKey: r.transformer.writeKey, objectsByKey }));
    }
    return out;
  }

  async function reload(): Promise<EncryptionResourceStatus[]> {
    let next: EncryptedResource[];
    try {
      next = resolveEncryptionConfig(readEncryptionConfig(opts.configPath), opts.kinds);
    } catch (err) {
      if (err instanceof EncryptionConfigError) throw new ConnectError(`the apiserver kept its encryption config: ${err.message}`, Code.FailedPrecondition);
      throw err;
    }
    // Every object stored under the old config's resources (and the new ones) must stay readable.
    const unreadable = new Map<string, number>();
    const prefixes = new Set([...state.resources(), ...next].map((r) => r.prefix));
    for (const prefix of prefixes) {
      const t = next.find((r) => r.prefix === prefix)?.transformer;
      const { items } = await raw.list(prefix);
      for (const kv of items) {
        const label = keyLabelOf(kv.value);
        if (t ? t.readable.has(label) : label === IDENTITY) continue;
        const what = `${prefix.split("/")[2]} under ${label}`;
        unreadable.set(what, (unreadable.get(what) ?? 0) + 1);
      }
    }
    if (unreadable.size > 0) {
      const list = [...unreadable].map(([what, n]) => `${n} ${what}`).join(", ");
      throw new ConnectError(
        `the apiserver kept its encryption config: under the new one it could not read ${list}; rewrite them first (skiff secrets-encrypt rotate-keys does) or keep those keys`,
        Code.FailedPrecondition,
      );
    }
    state.use(next);
    opts.log?.info({ writeKeys: Object.fromEntries(next.map((r) => [r.transformer.resource, r.transformer.writeKey])) }, "encryption config reloaded");
    return status();
  }

  async function rewriteOne(r: EncryptedResource, first: KeyValue): Promise<boolean> {
    const t = r.transformer;
    let kv: KeyValue | undefined = first;
    for (let attempt = 0; kv && keyLabelOf(kv.value) !== t.writeKey; attempt++) {
      if (attempt >= MAX_CONFLICTS) throw new ConnectError(`${kv.key} kept changing while being rewritten: run the rewrite again`, Code.Aborted);
      const value = t.toStorage(t.fromStorage(kv.value, kv.key), kv.key);
      try {
        await raw.update(kv.key, value, kv.modRevision);
        return true;
      } catch (err) {
        if (isStoreError(err, "NotFound")) return false;
        if (!isStoreError(err, "Conflict")) throw err;
        kv = err.current ?? (await raw.get(kv.key));
      }
    }
    return false;
  }

  async function rewrite(): Promise<number> {
    let n = 0;
    for (const r of state.resources()) {
      const { items } = await raw.list(r.prefix);
      for (const kv of items) if (await rewriteOne(r, kv)) n++;
    }
    opts.log?.info({ rewritten: n }, "stored encrypted resources again under their write keys");
    return n;
  }

  return { status: () => serial(status), reload: () => serial(reload), rewrite: () => serial(rewrite) };
}
