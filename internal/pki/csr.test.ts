import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createCa, signPublicKey, signedBy } from "./certs.ts";
import { createCsr, readCsr } from "./csr.ts";

describe("certificate signing requests", () => {
  it("carry the subject and names, and the signed certificate matches the requester's key", async () => {
    const ca = await createCa("test-ca");
    const { csr, key } = await createCsr({ commonName: "system:node:n1", organizations: ["system:nodes"], sans: ["n1", "10.0.0.5"] });
    const read = await readCsr(csr);
    expect(read).toMatchObject({ commonName: "system:node:n1", organizations: ["system:nodes"], sans: ["n1", "10.0.0.5"] });
    const cert = await signPublicKey(ca, read.publicKey, { commonName: "system:node:n1", organizations: ["system:nodes"], usage: "client" });
    expect(signedBy(cert, ca.cert)).toBe(true);
    expect(new X509Certificate(cert).checkPrivateKey((await import("node:crypto")).createPrivateKey(key))).toBe(true);
  });

  it("refuses text that is not a CSR, and a CSR whose signature was tampered with", async () => {
    await expect(readCsr("hello")).rejects.toThrow(/not a PEM certificate signing request/);
    const { csr } = await createCsr({ commonName: "x", organizations: [], sans: [] });
    const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ""), "base64");
    der[der.length - 5] ^= 0xff;
    const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    await expect(readCsr(bad)).rejects.toThrow(/signature/);
  });
});
