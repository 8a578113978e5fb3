import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createCa, issueCert, signedBy } from "./certs.ts";
import { ensurePki, installSharedServerKeys } from "./pki.ts";

const dir = mkdtempSync(join(tmpdir(), "skiff-pki-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("ensurePki", () => {
  it("makes a CA, the serving certificate with the service IP and extra names, and one client certificate per identity", async () => {
    const d = join(dir, "a");
    const pki = await ensurePki(d, { nodeNames: ["worker-1"], nodeAddresses: ["192.0.2.7"], serviceCidr: "10.100.0.0/16", extraSans: ["api.example.test"] });
    const serving = new X509Certificate(pki.apiserver.cert);
    for (const san of ["IP Address:127.0.0.1", "DNS:localhost", "IP Address:10.100.0.1", "IP Address:192.0.2.7", "DNS:api.example.test", "DNS:kubernetes.default.svc"]) {
      expect(serving.subjectAltName).toContain(san);
    }
    const subject = (pem: string) => new X509Certificate(pem).subject.split("\n").sort();
    expect(subject(pki.admin.cert)).toEqual(["CN=admin", "O=system:masters"]);
    expect(subject(pki.nodes["worker-1"].cert)).toEqual(["CN=system:node:worker-1", "O=system:nodes"]);
    // The node agent's port: a serving certificate for the addresses the apiserver dials it at.
    const agentServing = new X509Certificate(pki.nodeServing["worker-1"].cert);
    for (const san of ["DNS:worker-1", "IP Address:192.0.2.7", "IP Address:127.0.0.1"]) expect(agentServing.subjectAltName).toContain(san);
    expect(agentServing.checkIP("192.0.2.7")).toBe("192.0.2.7");
    expect(readFileSync(join(d, "node-worker-1-serving.crt"), "utf8")).toBe(pki.nodeServing["worker-1"].cert);
    expect(subject(pki.scheduler.cert)).toEqual(["CN=system:kube-scheduler"]);
    expect(subject(pki.controllerManager.cert)).toEqual(["CN=system:kube-controller-manager"]);
    expect(subject(pki.apiserverClient.cert)).toContain("CN=system:apiserver");
    for (const c of [pki.apiserver, pki.admin, pki.etcdServer, pki.nodes["worker-1"], pki.nodeServing["worker-1"]]) expect(signedBy(c.cert, pki.ca.cert)).toBe(true);
    expect(pki.serviceAccountKey.privateKey).toMatch(/BEGIN PRIVATE KEY/);
    for (const key of ["ca.key", "admin.key", "apiserver.key", "sa.key"]) expect(statSync(join(d, key)).mode & 0o777).toBe(0o600);
    const caDays = (new Date(new X509Certificate(pki.ca.cert).validTo).getTime() - Date.now()) / 86_400_000;
    expect(caDays).toBeGreaterThan(3640);
  });

  it("changes nothing when run again, and issues again only what is stale", async () => {
    const d = join(dir, "b");
    const first = await ensurePki(d, { nodeAddresses: [] });
    const writes: string[] = [];
    const again = await ensurePki(d, { nodeAddresses: [], onWrite: (f) => writes.push(f) });
    expect(writes).toEqual([]);
    expect(again.admin.cert).toBe(first.admin.cert);
    // An admin certificate with 30 days left is renewed; a new name renews the serving certificate.
    const soon = await issueCert(first.ca, { commonName: "admin", organizations: ["system:masters"], usage: "client", notAfter: new Date(Date.now() + 30 * 86_400_000) });
    writeFileSync(join(d, "admin.crt"), soon.cert);
    writeFileSync(join(d, "admin.key"), soon.key);
    const renewed = await ensurePki(d, { nodeAddresses: [], extraSans: ["new.example.test"], onWrite: (f, why) => writes.push(`${f.split("/").pop()}: ${why}`) });
    expect(writes.sort()).toEqual(["admin.crt: renewed: fewer than 90 days left", "apiserver.crt: renewed: new names new.example.test"]);
    expect(renewed.admin.cert).not.toBe(soon.cert);
    expect(readFileSync(join(d, "ca.crt"), "utf8")).toBe(first.ca.cert);
  });

  it("issues again what another CA signed", async () => {
    const d = join(dir, "c");
    await ensurePki(d, { nodeAddresses: [] });
    const other = await issueCert(await createCa("other"), { commonName: "admin", usage: "client" });
    writeFileSync(join(d, "admin.crt"), other.cert);
    const pki = await ensurePki(d, { nodeAddresses: [] });
    expect(signedBy(pki.admin.cert, pki.ca.cert)).toBe(true);
  });

  it("gives a server's etcd its own CA: the member and etcd client certificates are not the cluster CA's, and a joining server keeps the CA it was given", async () => {
    const first = await ensurePki(join(dir, "etcd-1"), { nodeAddresses: [], etcdMember: { addresses: ["192.0.2.1"] } });
    const etcd = first.etcd!;
    expect(signedBy(etcd.member.cert, etcd.ca.cert)).toBe(true);
    expect(signedBy(etcd.member.cert, first.ca.cert)).toBe(false);
    expect(signedBy(etcd.client.cert, etcd.ca.cert)).toBe(true);
    expect(new X509Certificate(etcd.member.cert).checkIP("192.0.2.1")).toBe("192.0.2.1");

    const d2 = join(dir, "etcd-2");
    installSharedServerKeys(d2, { ca: first.ca, etcdCa: etcd.ca, serviceAccountKey: first.serviceAccountKey });
    const second = await ensurePki(d2, { nodeAddresses: [], etcdMember: { addresses: ["192.0.2.2"] } });
    expect(second.ca.cert).toBe(first.ca.cert);
    expect(second.serviceAccountKey).toEqual(first.serviceAccountKey);
    expect(signedBy(second.etcd!.member.cert, etcd.ca.cert)).toBe(true);
    // Another cluster's keys never replace a CA already there.
    const other = await ensurePki(join(dir, "etcd-3"), { nodeAddresses: [], etcdMember: { addresses: [] } });
    expect(() => installSharedServerKeys(d2, { ca: other.ca, etcdCa: other.etcd!.ca, serviceAccountKey: other.serviceAccountKey })).toThrow(/another cluster's CA/);
  });
});
