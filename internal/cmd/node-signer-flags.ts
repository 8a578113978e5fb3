// `skiff apiserver`'s flags for the CA that signs node certificates of agents that join with a
// token (internal/join), and their lifetime.
import { readFileSync } from "node:fs";
import type { ClusterPki } from "../pki/pki.ts";
import { parseDuration } from "./controller-manager.ts";

/** The CA that signs node certificates for agents joining with a token (internal/join). */
export const nodeSignerArgs = {
  "cluster-signing-cert-file": { type: "string", description: "PEM CA certificate that signs node certificates of joining agents (default with --pki-dir: ca.crt)", valueHint: "FILE" },
  "cluster-signing-key-file": { type: "string", description: "Its PEM private key (default with --pki-dir: ca.key)", valueHint: "FILE" },
  "node-certificate-ttl": { type: "string", description: "Lifetime of the node certificates it signs; agents renew at 70-90 % of it", default: "8760h" },
} as const;

export function nodeSignerOptions(
  args: { "cluster-signing-cert-file"?: string; "cluster-signing-key-file"?: string; "node-certificate-ttl": string },
  pki: ClusterPki | undefined,
): { ca: { cert: string; key: string }; certificateTtlMs: number } | undefined {
  const ttl = parseDuration("node-certificate-ttl", args["node-certificate-ttl"]);
  if (ttl < 10_000) throw new Error(`--node-certificate-ttl must be at least 10s, got "${args["node-certificate-ttl"]}"`);
  const certFile = args["cluster-signing-cert-file"];
  const keyFile = args["cluster-signing-key-file"];
  if (!certFile !== !keyFile) throw new Error("give both --cluster-signing-cert-file and --cluster-signing-key-file, or neither");
  if (certFile && keyFile) {
    const read = (flag: string, f: string) => {
      try {
        return readFileSync(f, "utf8");
      } catch (err) {
        throw new Error(`--${flag} ${f}: ${(err as Error).message}`, { cause: err });
      }
    };
    return { ca: { cert: read("cluster-signing-cert-file", certFile), key: read("cluster-signing-key-file", keyFile) }, certificateTtlMs: ttl };
  }
  return pki ? { ca: pki.ca, certificateTtlMs: ttl } : undefined;
}
