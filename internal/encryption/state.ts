// The encryption config in use, resolved against the kind registry: storage prefix → transformer.
// It is swapped in one step on reload, so every read and write sees one whole config.
import type { Kind } from "../api/registry.ts";
import { prefixFor } from "../apiserver/objects.ts";
import { EncryptionConfigError, type EncryptionConfig } from "./config.ts";
import { createResourceTransformer, type ResourceTransformer } from "./providers.ts";

export interface EncryptedResource {
  kind: Kind;
  /** Where the kind's objects are stored ("/registry/secrets/"). */
  prefix: string;
  transformer: ResourceTransformer;
}

export interface EncryptionState {
  /** The transformer for a storage key, or undefined when its resource is stored in plaintext. */
  forKey(key: string): ResourceTransformer | undefined;
  /** Whether keys under this prefix may belong to an encrypted resource. */
  overlaps(prefix: string): boolean;
  resources(): readonly EncryptedResource[];
  use(resources: EncryptedResource[]): void;
}

/** Maps the config's resource names ("secrets", "secrets.", "deployments.apps") onto kinds. */
export function resolveEncryptionConfig(cfg: EncryptionConfig, kinds: readonly Kind[]): EncryptedResource[] {
  const out: EncryptedResource[] = [];
  const problems: string[] = [];
  cfg.resources.forEach((entry, i) => {
    entry.resources.forEach((name, j) => {
      const [plural, ...rest] = name.split(".");
      const group = rest.join(".");
      const kind = kinds.find((k) => k.plural === plural && (k.apiVersion.includes("/") ? k.apiVersion.split("/")[0] : "") === group);
      if (!kind) {
        problems.push(`resources[${i}].resources[${j}]: this apiserver has no resource "${name}" (it has ${kinds.map((k) => k.plural).join(", ")}; name apps kinds as deployments.apps)`);
        return;
      }
      out.push({ kind, prefix: prefixFor(kind), transformer: createResourceTransformer(plural, entry.providers) });
    });
  });
  if (problems.length > 0) throw new EncryptionConfigError(`encryption config is invalid: ${problems.join("; ")}`);
  return out;
}

export function createEncryptionState(initial: EncryptedResource[]): EncryptionState {
  let current = initial;
  return {
    forKey(key) {
      for (const r of current) if (key.startsWith(r.prefix)) return r.transformer;
      return undefined;
    },
    overlaps: (prefix) => current.some((r) => prefix.startsWith(r.prefix) || r.prefix.startsWith(prefix)),
    resources: () => current,
    use(resources) {
      current = resources;
    },
  };
}
