// A joining server checks the CA it fetched against the token's hash before it sends the secret:
// an impostor with another CA sees only the /cacerts request, and nothing of the secret.
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { expect, it } from "vitest";
import { formatJoinToken, caHashOf } from "../join/token.ts";
import { createCa, issueCert } from "../pki/certs.ts";
import { joinAsServer } from "./join.ts";

it("refuses a server whose CA is not the token's before sending the secret", async () => {
  const [real, impostor] = await Promise.all([createCa("real"), createCa("impostor")]);
  const serving = await issueCert(impostor, { commonName: "impostor", sans: ["127.0.0.1"], usage: "server" });
  const seen: string[] = [];
  const fake = http2.createSecureServer({ ...serving, allowHTTP1: true }, (req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => (body += d));
    req.on("end", () => {
      seen.push(JSON.stringify({ url: req.url, headers: req.headers, body }));
      res.writeHead(200, { "content-type": "application/x-pem-file" });
      res.end(impostor.cert);
    });
  });
  await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r));
  const secret = "0123456789abcdef";
  try {
    const token = formatJoinToken({ caHash: caHashOf(real.cert), id: "abc123", secret });
    await expect(joinAsServer({ server: `https://127.0.0.1:${(fake.address() as AddressInfo).port}`, token, serverName: "s2", peerUrl: "https://10.0.0.2:2380" })).rejects.toThrow(
      /is not the one the join token names/,
    );
    expect(seen.map((s) => JSON.parse(s).url)).toEqual(["/cacerts"]);
    for (const s of seen) expect(s).not.toContain(secret);
  } finally {
    await new Promise((r) => fake.close(r));
  }
});
