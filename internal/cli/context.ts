// What every command needs: where to write, the apiserver to talk to, typed clients for it, and
// the flags all commands share. One Session per invocation; tests make their own with fake I/O.
import type { CallOptions, Transport } from "@connectrpc/connect";
import { lookupKind, kinds, type Kind } from "../api/registry.ts";
import { createResourceClient, type ResourceClient } from "../client/resource-client.ts";
import { createFailoverTransport } from "../client/failover.ts";
import { createServerTransport } from "../client/transport.ts";
import type { Env } from "./config.ts";
import { resolveConnection, type ConnectionFlags } from "./connection.ts";
import { CliError } from "./errors.ts";

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Promise<string>;
  env: Env;
  /** Aborts when the user interrupts (ends watches). */
  signal: AbortSignal;
}

export interface Session {
  io: CliIO;
  /** Connection flags given before the subcommand (the root command records them). */
  rootFlags?: ConnectionFlags;
  /** The server last resolved, for error messages. */
  server?: string;
  /** Every server it may move to (the first is `server`), for error messages. */
  servers?: string[];
  /** Work to finish before skiffctl exits (keeping the servers it learned). */
  pending?: Promise<unknown>[];
  /** The CA file the server's certificate was checked against, for error messages. */
  caFile?: string;
}

export interface Api {
  server: string;
  /** Every server calls may move to (the first is `server`), for error messages. */
  servers: string[];
  /** For calls beyond the generic ones (ServiceAccountService.CreateToken, AuthorizationService, PodService.Log). */
  transport: Transport;
  client(kind: Kind): ResourceClient;
}

/** A long watch (`get -w`, `rollout status`) reads the Endpoints again this often. */
const DISCOVERY_INTERVAL_MS = 60_000;

/** Per-call time limit for everything but watches. */
const CALL_TIMEOUT_MS = 30_000;

function withTimeout(c: ResourceClient): ResourceClient {
  const t = <O extends CallOptions | undefined>(o: O) => ({ timeoutMs: CALL_TIMEOUT_MS, ...(o ?? {}) });
  return {
    kind: c.kind,
    create: (obj, o) => c.create(obj, t(o)),
    get: (ns, name, o) => c.get(ns, name, t(o)),
    list: (ns, o) => c.list(ns, t(o)),
    update: (obj, o) => c.update(obj, t(o)),
    updateStatus: (obj, o) => c.updateStatus(obj, t(o)),
    delete: (ns, name, o) => c.delete(ns, name, t(o)),
    watch: (ns, o) => c.watch(ns, o),
  };
}

/** Connects to the apiserver named by --server, $SKIFF_SERVER, the config file or the default, with the credentials of the flags or the context. */
export async function connect(session: Session, flags: ConnectionFlags): Promise<Api> {
  const merged: ConnectionFlags = { ...session.rootFlags };
  for (const [k, v] of Object.entries(flags)) if (k in connectionArgs && v) (merged as Record<string, unknown>)[k] = v;
  const { server, servers, credentials, caFile, rememberServers } = await resolveConnection(merged, session.io.env);
  session.server = server;
  session.caFile = caFile;
  // Like the components, skiffctl holds every apiserver: while the command runs it reads the
  // `kubernetes` Endpoints (through the first server that answers) and keeps what they list in its
  // config file; the servers kept last time are already in `servers`, for when the first is down.
  let listed: string[] | undefined;
  const transport = createFailoverTransport({
    servers,
    connect: (url) => createServerTransport(url, credentials),
    discoveryIntervalMs: DISCOVERY_INTERVAL_MS,
    onDiscovered: (urls) => (listed = urls),
  });
  session.servers = transport.servers();
  const learned = transport.discover().then(async () => {
    session.servers = transport.servers();
    if (listed && rememberServers) await rememberServers(listed);
  });
  (session.pending ??= []).push(learned.catch(() => undefined)); // a read-only config only loses the cache
  const clients = new Map<string, ResourceClient>();
  return {
    server,
    get servers() {
      return transport.servers();
    },
    transport,
    client(kind) {
      let c = clients.get(kind.kind);
      if (!c) clients.set(kind.kind, (c = withTimeout(createResourceClient(transport, kind))));
      return c;
    },
  };
}

export function knownResourceTypes(): string {
  return kinds.map((k) => (k.shortNames.length ? `${k.plural} (${k.shortNames.join(",")})` : k.plural)).join(", ");
}

/** A kind by any name a user types ("po", "pods", "Deployment"), or a CliError listing them all. */
export function resolveKind(name: string): Kind {
  const k = lookupKind(name);
  if (!k) throw new CliError(`unknown resource type "${name}"; known types: ${knownResourceTypes()}`);
  return k;
}

/** The flags every command takes: where the apiserver is and who we are (kubectl's names). */
export const connectionArgs = {
  server: { type: "string", description: "apiserver URL (else $SKIFF_SERVER, the config file's context, https://127.0.0.1:6443)", valueHint: "URL" },
  context: { type: "string", description: "the config file's context to use (default: its current-context)", valueHint: "NAME" },
  "certificate-authority": { type: "string", description: "CA file to check the apiserver's certificate against", valueHint: "FILE" },
  "client-certificate": { type: "string", description: "client certificate file (CN = user, O = groups)", valueHint: "FILE" },
  "client-key": { type: "string", description: "the client certificate's key file", valueHint: "FILE" },
  token: { type: "string", description: "bearer token (instead of a client certificate)", valueHint: "TOKEN" },
  as: { type: "string", description: "act as this user (impersonation; needs permission)", valueHint: "USER" },
  "as-group": { type: "string", description: "act with these groups, comma-separated (with --as)", valueHint: "GROUPS" },
} as const;

/** Older name of connectionArgs. */
export const serverArg = connectionArgs;

export const namespaceArgs = {
  namespace: { type: "string", alias: "n", description: "namespace (default: \"default\")", valueHint: "NS" },
} as const;

/** The namespace to use for namespaced objects. */
export function namespaceOf(args: { namespace?: string }): string {
  return args.namespace || "default";
}
