// `skiff secrets-encrypt`: encryption at rest, from the machine that holds the apiserver's
// --encryption-provider-config. rotate-keys runs the whole rotation against a serving apiserver:
//   add a new key first in the file → the apiserver reloads it (new writes use it, old keys still
//   read) → every encrypted object is stored again under it → the old keys leave the file → reload.
// The file can read everything stored at every step, so a failure part-way leaves nothing unreadable.
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { defineCommand } from "citty";
import { EncryptionService, type EncryptionResourceStatus } from "../../gen/skiff/v1alpha1/encryption_service_pb.js";
import { createApiTransport } from "../client/transport.ts";
import { addWriteKey, readEncryptionConfig, retireOtherKeys, writeEncryptionConfig, type EncryptionConfig } from "../encryption/config.ts";
import { resolveConnection, type ConnectionFlags } from "../cli/connection.ts";
import { connectionArgs } from "../cli/context.ts";
import { guarded } from "./guard.ts";

type EncryptionClient = Client<typeof EncryptionService>;

/** skiffctl's connection flags: the config file's current context (as `skiff up` wrote it) unless overridden. */
const server = connectionArgs;

/** EncryptionService as the caller skiffctl's credentials name (update on encryptionconfigurations for reload/rewrite). */
async function encryptionClient(args: ConnectionFlags): Promise<Client<typeof EncryptionService>> {
  const c = await resolveConnection(args);
  return createClient(EncryptionService, createApiTransport(c.server, c.credentials));
}
const configFile = { type: "string", description: "The apiserver's EncryptionConfiguration file", valueHint: "FILE", required: true } as const;
// Writes that raced the rewrite under an old key are rewritten again before the keys retire.
const RETIRE_ATTEMPTS = 3;

export function formatStatus(resources: EncryptionResourceStatus[]): string {
  const rows = [["RESOURCE", "WRITE KEY", "OBJECTS BY KEY"]];
  for (const r of resources) {
    const counts = Object.entries(r.objectsByKey).sort(([a], [b]) => a.localeCompare(b));
    rows.push([r.resource, r.writeKey, counts.length === 0 ? "(none stored)" : counts.map(([k, n]) => `${k}=${n}`).join(" ")]);
  }
  const width = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(width[i]))).join("  ")).join("\n");
}

/** What the file's first provider writes, per resource name as status reports it. */
function writeKeyOf(cfg: EncryptionConfig, resource: string): string | undefined {
  const entry = cfg.resources.find((e) => e.resources.some((n) => n.split(".")[0] === resource));
  const first = entry?.providers[0];
  if (!first) return undefined;
  return "identity" in first ? "identity" : `aesgcm:${first.aesgcm.keys[0].name}`;
}

async function reloadExpecting(client: EncryptionClient, keyLabel: string): Promise<void> {
  const { resources } = await client.reloadEncryptionConfig({});
  const other = resources.find((r) => r.writeKey !== keyLabel);
  if (other) throw new Error(`after reloading, the apiserver writes ${other.resource} with ${other.writeKey}, not ${keyLabel}: is this file its --encryption-provider-config?`);
}

export async function rotateKeys(client: EncryptionClient, file: string, say: (line: string) => void): Promise<EncryptionResourceStatus[]> {
  const current = readEncryptionConfig(file);
  // The file must be the one the apiserver serves with, or the rotation would strand its keys.
  for (const r of (await client.getEncryptionStatus({})).resources) {
    const inFile = writeKeyOf(current, r.resource);
    if (inFile !== r.writeKey) {
      throw new Error(`the apiserver writes ${r.resource} with ${r.writeKey} but ${file} says ${inFile ?? "nothing"}: pass the file the apiserver was started with`);
    }
  }
  const { config: added, keyName } = addWriteKey(current);
  writeEncryptionConfig(file, added);
  await reloadExpecting(client, `aesgcm:${keyName}`);
  say(`new key ${keyName} added; the apiserver writes with it`);
  let { rewritten } = await client.rewriteEncryptedResources({});
  say(`rewrote ${rewritten} objects under ${keyName}`);
  writeEncryptionConfig(file, retireOtherKeys(added));
  for (let attempt = 1; ; attempt++) {
    try {
      await reloadExpecting(client, `aesgcm:${keyName}`);
      break;
    } catch (err) {
      const racing = err instanceof ConnectError && err.code === Code.FailedPrecondition && attempt < RETIRE_ATTEMPTS;
      if (!racing) {
        // Keep every key the stored objects may still need.
        writeEncryptionConfig(file, added);
        throw new Error(`old keys not retired (${file} keeps them; run rotate-keys again): ${(err as Error).message}`, { cause: err });
      }
      ({ rewritten } = await client.rewriteEncryptedResources({}));
      say(`rewrote ${rewritten} objects written under an old key meanwhile`);
    }
  }
  say("old keys retired");
  return (await client.getEncryptionStatus({})).resources;
}

export const secretsEncryptCommand = defineCommand({
  meta: { name: "secrets-encrypt", description: "Encryption at rest: status, reload, rewrite, key rotation" },
  subCommands: {
    status: defineCommand({
      meta: { name: "status", description: "Which key each encrypted resource writes with, and how many stored objects each key holds" },
      args: { ...server },
      run: guarded(async ({ args }) => {
        const client = await encryptionClient(args);
        console.log(formatStatus((await client.getEncryptionStatus({})).resources));
      }),
    }),
    reload: defineCommand({
      meta: { name: "reload", description: "Make the apiserver read its --encryption-provider-config again (refused if a stored object would become unreadable)" },
      args: { ...server },
      run: guarded(async ({ args }) => {
        const client = await encryptionClient(args);
        console.log(formatStatus((await client.reloadEncryptionConfig({})).resources));
      }),
    }),
    rewrite: defineCommand({
      meta: { name: "rewrite", description: "Store every object of every encrypted resource again under its write key" },
      args: { ...server },
      run: guarded(async ({ args }) => {
        const client = await encryptionClient(args);
        const { rewritten, resources } = await client.rewriteEncryptedResources({});
        console.log(`rewrote ${rewritten} objects`);
        console.log(formatStatus(resources));
      }),
    }),
    "rotate-keys": defineCommand({
      meta: { name: "rotate-keys", description: "Add a new key, store every encrypted object under it, retire the old keys; the apiserver keeps serving" },
      args: { ...server, "encryption-provider-config": configFile },
      run: guarded(async ({ args }) => {
        const client = await encryptionClient(args);
        console.log(formatStatus(await rotateKeys(client, args["encryption-provider-config"], (l) => console.log(l))));
      }),
    }),
  },
});
