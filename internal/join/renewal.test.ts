import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createCa, issueCert } from "../pki/certs.ts";
import { renewalTime } from "./renewal.ts";

describe("renewal time", () => {
  it("falls between 70 % and 90 % of the certificate's lifetime, placed by the jitter", async () => {
    const ca = await createCa("ca");
    const notBefore = new Date(Date.UTC(2030, 0, 1));
    const notAfter = new Date(notBefore.getTime() + 100_000_000);
    const { cert } = await issueCert(ca, { commonName: "system:node:n", usage: "client", notBefore, notAfter });
    const from = new Date(new X509Certificate(cert).validFrom).getTime();
    const life = new Date(new X509Certificate(cert).validTo).getTime() - from;
    expect(renewalTime(cert, 0)).toBe(from + life * 0.7);
    expect(renewalTime(cert, 0.5)).toBe(from + life * 0.8);
    expect(renewalTime(cert, 0.999)).toBeLessThan(from + life * 0.9);
  });
});
