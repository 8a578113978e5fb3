// Client certificates are verified once per connection (the TLS handshake did the chain check)
// and the identity is reused for every request on it, until the certificate expires: a
// long-lived connection does not outlive its credential.
import { Code, ConnectError } from "@connectrpc/connect";
import type { TLSSocket } from "node:tls";
import { describe, expect, it } from "vitest";
import { createAuthenticator, type Peer } from "./authenticator.ts";

const notAfter = Date.parse("2027-01-01T00:00:00Z");

/** A connection whose handshake verified a certificate for CN=jane, O=dev, valid until notAfter. */
function connection(authorized = true): Peer & { lookups: number } {
  const peer = {
    key: {},
    lookups: 0,
    socket: {
      authorized,
      authorizationError: authorized ? undefined : "CERT_HAS_EXPIRED",
      getPeerCertificate() {
        peer.lookups++;
        return { subject: { CN: "jane", O: "dev" }, valid_to: "Jan  1 00:00:00 2027 GMT" };
      },
    } as unknown as TLSSocket,
  };
  return peer;
}

function refusal(f: () => unknown): ConnectError {
  try {
    f();
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected a refusal");
}

describe("client certificate authentication", () => {
  it("reads a connection's certificate once and reuses the identity while the certificate is valid", () => {
    let clock = notAfter - 60_000;
    const authn = createAuthenticator({ now: () => clock });
    const conn = connection();
    for (let i = 0; i < 3; i++) expect(authn.authenticate(conn, undefined)).toEqual({ name: "jane", groups: ["dev", "system:authenticated"], authenticatedBy: "x509" });
    expect(conn.lookups).toBe(1);
    clock = notAfter;
    expect(authn.authenticate(conn, undefined)).toMatchObject({ name: "jane" });
  });

  it("refuses the requests of a connection whose certificate expired after its handshake", () => {
    let clock = notAfter - 1000;
    const authn = createAuthenticator({ now: () => clock });
    const conn = connection();
    expect(authn.authenticate(conn, undefined)).toMatchObject({ name: "jane" });
    clock = notAfter + 1;
    const err = refusal(() => authn.authenticate(conn, undefined));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toBe("client certificate rejected: it has expired; get a new one from the cluster admin (it expired while this connection was open)");
  });

  it("refuses a certificate the handshake did not verify, in words that say why", () => {
    const err = refusal(() => createAuthenticator().authenticate(connection(false), undefined));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toBe("client certificate rejected: it has expired; get a new one from the cluster admin");
  });
});
