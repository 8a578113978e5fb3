// The cost of the request pipeline per call (authentication + impersonation + authorization), as
// `npm run bench -- api` prints it: the same handler called directly and through the pipeline
// (begin + the guarded handler), in this process, many times. A client certificate's identity is
// read once per connection and then cached on it, so the per-call cost is what is measured here;
// the peer stands for one connection whose certificate was already verified by TLS.
import { createContextValues } from "@connectrpc/connect";
import type { TLSSocket } from "node:tls";
import { kinds } from "../internal/api/registry.ts";
import { createRequestPipeline } from "../internal/apiserver/pipeline.ts";
import { createAuthenticator, type Peer } from "../internal/auth/authn/authenticator.ts";
import { createStaticTokenAuthenticator } from "../internal/auth/authn/token-file.ts";
import { allowAuthenticated } from "../internal/auth/authz/allow-authenticated.ts";

export interface PipelineCost {
  /** Nanoseconds per call added by the pipeline, by credential. */
  certNs: number;
  tokenNs: number;
  impersonationNs: number;
  calls: number;
}

export async function measurePipelineCost(calls = 200_000): Promise<PipelineCost> {
  const pipeline = createRequestPipeline({
    authenticator: createAuthenticator({ tokens: [createStaticTokenAuthenticator(new Map([["bench-token", { name: "bench", groups: [] }]]))] }),
    authorizer: allowAuthenticated(),
  });
  const kind = kinds.find((k) => k.kind === "ConfigMap")!;
  const handler = async (req: { namespace: string; name: string }) => req.name;
  const guarded = pipeline.guard(kind, { get: handler }).get as (req: unknown, ctx: unknown) => Promise<string>;
  const certPeer = (): Peer => {
    const socket = { authorized: true, getPeerCertificate: () => ({ subject: { CN: "admin", O: "system:masters" }, valid_to: "Jan  1 00:00:00 2100 GMT" }) } as unknown as TLSSocket;
    return { key: {}, socket };
  };
  const noCert: Peer = { key: {}, socket: { authorized: false, getPeerCertificate: () => ({}) } as unknown as TLSSocket };
  const req = { namespace: "default", name: "x" };
  const none = () => undefined;
  const token = (n: string) => (n === "authorization" ? "Bearer bench-token" : undefined);
  const asJane = (n: string) => (n === "impersonate-user" ? "jane" : undefined);

  async function time(fn: () => Promise<unknown>): Promise<number> {
    let best = Infinity;
    for (let round = 0; round < 3; round++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < calls; i++) await fn();
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / calls);
    }
    return best;
  }
  const peer = certPeer();
  const direct = await time(() => handler(req));
  const cert = await time(() => guarded(req, { values: pipeline.begin(peer, none), signal: undefined }));
  const tok = await time(() => guarded(req, { values: pipeline.begin(noCert, token), signal: undefined }));
  const imp = await time(() => guarded(req, { values: pipeline.begin(peer, asJane), signal: undefined }));
  // The baseline still builds the context values a plain handler call gets from connect.
  const baseline = Math.min(direct, await time(() => handler(req).then(() => createContextValues())));
  return { certNs: cert - baseline, tokenNs: tok - baseline, impersonationNs: imp - baseline, calls };
}
