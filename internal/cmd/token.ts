// `skiff token create|list|delete`: join tokens (internal/join/token.ts), managed through the API
// with the caller's admin credentials (skiffctl's config, or the connection flags).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { defineCommand } from "citty";
import { NamespaceSchema, type Namespace } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import type { Secret } from "../../gen/skiff/v1alpha1/config_pb.js";
import { resolveConnection } from "../cli/connection.ts";
import { createResourceClient } from "../client/resource-client.ts";
import { createServerTransport } from "../client/transport.ts";
import {
  caHashOf,
  formatJoinToken,
  isExpired,
  MAX_DESCRIPTION,
  newTokenId,
  newTokenSecret,
  readTokenSecret,
  ROLES,
  TOKEN_NAMESPACE,
  TOKEN_SECRET_PREFIX,
  tokenSecret,
  type TokenRole,
} from "../join/token.ts";
import { parseDuration } from "./controller-manager.ts";
import { guarded } from "./guard.ts";

const connectionArgs = {
  kubeconfig: { type: "string", description: "skiffctl's config file (default: $SKIFF_CONFIG or ~/.skiff/config.yaml), its current context", valueHint: "FILE" },
  server: { type: "string", description: "The apiserver URL (overrides the config's)", valueHint: "URL" },
  "certificate-authority": { type: "string", description: "CA file of the apiserver's certificate", valueHint: "FILE" },
  "client-certificate": { type: "string", description: "An admin's client certificate", valueHint: "FILE" },
  "client-key": { type: "string", description: "Its key", valueHint: "FILE" },
} as const;

async function connect(args: { kubeconfig?: string; server?: string; "certificate-authority"?: string; "client-certificate"?: string; "client-key"?: string }) {
  const c = await resolveConnection(args);
  const transport = createServerTransport(c.server, c.credentials);
  return { transport, secrets: createResourceClient<Secret>(transport, "Secret"), ca: String(c.credentials.ca) };
}

const createCmd = defineCommand({
  meta: { name: "create", description: "Make a join token and print it (K10<CA hash>::<id>.<secret>): `skiff agent --server URL --token …` joins with it" },
  args: {
    ...connectionArgs,
    ttl: { type: "string", description: "How long the token works (0: until deleted)", default: "24h" },
    role: { type: "string", description: "agent (joins nodes) or server", default: "agent" },
    description: { type: "string", description: "What the token is for (shown by token list)", default: "" },
  },
  run: guarded(async ({ args }) => {
    const ttl = parseDuration("ttl", args.ttl);
    if (!(ROLES as readonly string[]).includes(args.role)) throw new Error(`--role must be ${ROLES.join(" or ")}, got "${args.role}"`);
    if (args.description.length > MAX_DESCRIPTION) throw new Error(`--description is at most ${MAX_DESCRIPTION} characters, got ${args.description.length}`);
    const { transport, secrets, ca } = await connect(args);
    try {
      await createResourceClient<Namespace>(transport, "Namespace").create(create(NamespaceSchema, { metadata: { name: TOKEN_NAMESPACE } }));
    } catch (err) {
      if (ConnectError.from(err).code !== Code.AlreadyExists) throw err;
    }
    const id = newTokenId();
    const secret = newTokenSecret();
    await secrets.create(tokenSecret({ id, secret, role: args.role as TokenRole, description: args.description, expires: ttl > 0 ? new Date(Date.now() + ttl) : undefined }));
    console.log(formatJoinToken({ caHash: caHashOf(ca), id, secret }));
    transport.close();
  }),
});

/** The table `token list` prints: never a secret. */
export function tokenTable(items: Secret[], now = Date.now()): string {
  const rows = [["ID", "ROLE", "EXPIRES", "DESCRIPTION"]];
  for (const s of items) {
    const t = readTokenSecret(s);
    if (!t) continue;
    const expires = !t.expires ? "never" : isExpired(t, now) ? `expired (${t.expires.toISOString()})` : t.expires.toISOString();
    rows.push([t.id, t.role, expires, t.description]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("   ").trimEnd()).join("\n");
}

const listCmd = defineCommand({
  meta: { name: "list", description: "The join tokens: id, role, expiry, description (never the secret)" },
  args: connectionArgs,
  run: guarded(async ({ args }) => {
    const { transport, secrets } = await connect(args);
    const page = await secrets.list(TOKEN_NAMESPACE);
    console.log(tokenTable(page.items));
    transport.close();
  }),
});

const deleteCmd = defineCommand({
  meta: { name: "delete", description: "Delete a join token by its id: it stops working at once" },
  args: { ...connectionArgs, id: { type: "positional", description: "The token's id (the 6 characters before the dot)", required: true } },
  run: guarded(async ({ args }) => {
    const { transport, secrets } = await connect(args);
    const id = args.id.split(".")[0].replace(/^K10[0-9a-f]*::/, "");
    try {
      await secrets.delete(TOKEN_NAMESPACE, `${TOKEN_SECRET_PREFIX}${id}`);
    } catch (err) {
      if (ConnectError.from(err).code === Code.NotFound) throw new Error(`no join token "${id}" (skiff token list shows them)`, { cause: err });
      throw err;
    }
    console.log(`token ${id} deleted`);
    transport.close();
  }),
});

export const tokenCommand = defineCommand({
  meta: { name: "token", description: "Join tokens for agents (and servers) joining the cluster" },
  subCommands: { create: createCmd, list: listCmd, delete: deleteCmd },
});
