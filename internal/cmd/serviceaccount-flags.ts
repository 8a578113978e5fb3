// The apiserver's ServiceAccount token flags (kube-apiserver's names), shared by `skiff apiserver`
// and `skiff up` (whose signing key is the cluster PKI's sa.key).
import { readFileSync } from "node:fs";
import type { ApiServerOptions } from "../apiserver/server.ts";
import { signingKeyFromPem, verifyKeysFromPem } from "../auth/serviceaccount/index.ts";

export const serviceAccountArgs = {
  "service-account-signing-key-file": { type: "string", description: "PEM ECDSA P-256 private key that signs ServiceAccount tokens (default: a key for this process only)", valueHint: "FILE" },
  "service-account-key-file": { type: "string", description: "PEM public keys whose tokens are also accepted (e.g. the previous signing key)", valueHint: "FILE" },
  "service-account-issuer": { type: "string", description: "The tokens' issuer (iss)", default: "https://kubernetes.default.svc" },
  "api-audiences": { type: "string", description: "Comma-separated audiences the apiserver accepts in tokens (default: the issuer)", valueHint: "LIST" },
  "advertise-address": { type: "string", description: "The address pods reach the apiserver at (the kubernetes Service's Endpoints; default: the --listen host, or this machine's first IPv4)", valueHint: "IP" },
} as const;

type Args = { [K in keyof typeof serviceAccountArgs]?: string };

function readPem(flag: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`--${flag} ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** The ApiServerOptions the flags ask for; bad keys stop the server before it starts. */
export function serviceAccountOptions(args: Args, defaultSigningKeyFile?: string): Partial<ApiServerOptions> {
  const keyFile = args["service-account-signing-key-file"] || defaultSigningKeyFile;
  const signing = keyFile ? readPem("service-account-signing-key-file", keyFile) : undefined;
  if (signing) signingKeyFromPem(signing, `--service-account-signing-key-file ${keyFile}`);
  const extraFile = args["service-account-key-file"];
  const extra = extraFile ? readPem("service-account-key-file", extraFile) : undefined;
  if (extra) verifyKeysFromPem(extra, `--service-account-key-file ${extraFile}`);
  const audiences = (args["api-audiences"] ?? "").split(",").map((a) => a.trim()).filter(Boolean);
  return {
    serviceAccountSigningKey: signing,
    serviceAccountPublicKeys: extra,
    serviceAccountIssuer: args["service-account-issuer"] || undefined,
    apiAudiences: audiences.length > 0 ? audiences : undefined,
    advertiseAddress: args["advertise-address"] || undefined,
  };
}
