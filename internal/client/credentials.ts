// Who a client is toward the apiserver: the CA that signed the apiserver's certificate, and a
// client certificate or a bearer token, optionally impersonating someone else (Kubernetes' headers).
export interface ApiCredentials {
  /** PEM of the CA that signed the apiserver's serving certificate. */
  ca: string | Buffer;
  /** PEM client certificate and key (CN = user, O = groups). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** A bearer token (static token file, ServiceAccount token). */
  token?: string;
  /** Act as this user (needs `impersonate` on users for the real one). */
  impersonateUser?: string;
  impersonateGroups?: string[];
}

/** The headers every call carries for these credentials. */
export function credentialHeaders(c: ApiCredentials): Record<string, string> {
  const h: Record<string, string> = {};
  if (c.token) h.authorization = `Bearer ${c.token}`;
  if (c.impersonateUser) h["impersonate-user"] = c.impersonateUser;
  if (c.impersonateGroups?.length) h["impersonate-group"] = c.impersonateGroups.join(",");
  return h;
}
