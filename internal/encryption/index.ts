// Encryption at rest for the apiserver: the storage it uses, and the EncryptionService handlers.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Kind } from "../api/registry.ts";
import type { Store } from "../storage/store.ts";
import { createEncryptionAdmin, type EncryptionAdmin } from "./admin.ts";
import { readEncryptionConfig } from "./config.ts";
import { createEncryptionState, resolveEncryptionConfig } from "./state.ts";
import { createEncryptingStore } from "./store.ts";

export { UndecryptableError, assertPlaintext } from "./providers.ts";

export interface Encryption {
  /** The store the apiserver should use: plaintext above, ciphertext in `raw` below. */
  store: Store;
  admin?: EncryptionAdmin;
  /** EncryptionService's handlers (as connect's router and the direct gRPC path take them). */
  handlers: Record<string, unknown>;
}

/** Reads the config (a bad one throws, naming the problem) and wraps the store. No path: nothing is encrypted. */
export function createEncryption(raw: Store, configPath: string | undefined, kinds: readonly Kind[], log?: Logger): Encryption {
  if (!configPath) {
    const off = async () => {
      throw new ConnectError("this apiserver runs without --encryption-provider-config: nothing is encrypted at rest", Code.FailedPrecondition);
    };
    return { store: raw, handlers: { getEncryptionStatus: off, reloadEncryptionConfig: off, rewriteEncryptedResources: off } };
  }
  const state = createEncryptionState(resolveEncryptionConfig(readEncryptionConfig(configPath), kinds));
  log?.info({ writeKeys: Object.fromEntries(state.resources().map((r) => [r.transformer.resource, r.transformer.writeKey])) }, "encryption at rest");
  const admin = createEncryptionAdmin({ raw, state, configPath, kinds, log });
  return {
    store: createEncryptingStore(raw, state),
    admin,
    handlers: {
      getEncryptionStatus: async () => ({ resources: await admin.status() }),
      reloadEncryptionConfig: async () => ({ resources: await admin.reload() }),
      rewriteEncryptedResources: async () => {
        const rewritten = await admin.rewrite();
        return { rewritten: BigInt(rewritten), resources: await admin.status() };
      },
    },
  };
}
