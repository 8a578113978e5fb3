// Certificate renewal of a joined agent: at a random point between 70 % and 90 % of the client
// certificate's lifetime (jittered so that nodes joined together do not renew together), new
// keys and CSRs go to RenewNodeCertificates over the agent's own connection (authenticated by the
// current certificate); the new files are written, then applied without a restart: the API
// transport opens its next connection with them, the agent port serves the new certificate.
import { createClient, type Transport } from "@connectrpc/connect";
import { X509Certificate } from "node:crypto";
import { NodeIdentityService } from "../../gen/skiff/v1alpha1/node_identity_service_pb.js";
import { credentialsFrom, nodeCsrs } from "./agent-join.ts";
import { writeCredentials, type NodeCredentials } from "./credentials.ts";

export interface RenewerOptions {
  /** The agent's transport (authenticated as the node). */
  transport: Transport;
  nodeName: string;
  dataDir: string;
  servingSans: string[];
  current: NodeCredentials;
  /** Applies renewed credentials (transport and agent port). */
  apply(creds: NodeCredentials): void;
  log?: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
  /** In [0, 1): where in the 70–90 % window to renew. Default Math.random. */
  random?: () => number;
}

export interface CertificateRenewer {
  /** When the next renewal is due (ms since the epoch). */
  nextRenewal(): number;
  stop(): void;
}

/** The moment to renew a certificate valid from notBefore to notAfter: 70–90 % of the way. */
export function renewalTime(certPem: string, random: number): number {
  const x = new X509Certificate(certPem);
  const from = new Date(x.validFrom).getTime();
  const to = new Date(x.validTo).getTime();
  return from + (to - from) * (0.7 + 0.2 * random);
}

export function startCertificateRenewer(opts: RenewerOptions): CertificateRenewer {
  const random = opts.random ?? Math.random;
  const client = createClient(NodeIdentityService, opts.transport);
  let current = opts.current;
  let due = renewalTime(current.cert, random());
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  function schedule(at: number): void {
    due = at;
    if (stopped) return;
    // setTimeout holds at most ~24.8 days: wake up then and look again.
    timer = setTimeout(() => void renew(), Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1));
    timer.unref();
  }

  async function renew(): Promise<void> {
    if (Date.now() < due) return schedule(due);
    try {
      const { requests, keys } = await nodeCsrs(opts.nodeName, opts.servingSans);
      const res = await client.renewNodeCertificates({ requests }, { timeoutMs: 30_000 });
      const next = credentialsFrom(res.certificates, keys);
      writeCredentials(opts.dataDir, next);
      opts.apply(next);
      current = next;
      opts.log?.info({ notAfter: new X509Certificate(next.cert).validTo }, "node certificates renewed");
      schedule(renewalTime(current.cert, random()));
    } catch (err) {
      // Try again soon, but not in a tight loop: a tenth of what is left, between 1 s and 5 min.
      const left = new Date(new X509Certificate(current.cert).validTo).getTime() - Date.now();
      const retryMs = Math.min(300_000, Math.max(1000, left / 10));
      opts.log?.warn({ err: (err as Error).message, retryInMs: retryMs }, "could not renew the node certificates; retrying");
      schedule(Date.now() + retryMs);
    }
  }

  schedule(due);
  return {
    nextRenewal: () => due,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
