// The flags of the apiserver → agent link: `skiff agent` refuses to start without its port's TLS
// files, `skiff apiserver` takes the three --kubelet-* files together or none.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { agentTlsFiles } from "./agent.ts";
import { kubeletClientFiles } from "./apiserver.ts";

const dir = mkdtempSync(join(tmpdir(), "skiff-link-flags-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe("skiff agent --tls-cert-file --tls-private-key-file --client-ca-file", () => {
  it("are all required: the port serves the apiserver only", () => {
    expect(() => agentTlsFiles({})).toThrow("skiff agent needs --tls-cert-file, --tls-private-key-file, --client-ca-file: its port serves logs to the apiserver only, over mutual TLS");
    expect(() => agentTlsFiles({ "tls-cert-file": file("a.crt", "C"), "tls-private-key-file": file("a.key", "K") })).toThrow("skiff agent needs --client-ca-file:");
  });

  it("are read, and a file that cannot be read is named", () => {
    expect(agentTlsFiles({ "tls-cert-file": file("b.crt", "C"), "tls-private-key-file": file("b.key", "K"), "client-ca-file": file("ca.crt", "CA") })).toEqual({ cert: "C", key: "K", clientCa: "CA" });
    expect(() => agentTlsFiles({ "tls-cert-file": join(dir, "missing.crt"), "tls-private-key-file": file("c.key", "K"), "client-ca-file": file("ca2.crt", "CA") })).toThrow(/^--tls-cert-file .*missing\.crt: ENOENT/);
  });
});

describe("skiff apiserver --kubelet-client-certificate --kubelet-client-key --kubelet-certificate-authority", () => {
  it("go together, or not at all (Log then says what to set)", () => {
    expect(kubeletClientFiles({})).toBeUndefined();
    expect(() => kubeletClientFiles({ "kubelet-client-certificate": file("k.crt", "C") })).toThrow("--kubelet-client-key, --kubelet-certificate-authority missing: the --kubelet-* flags go together");
    expect(kubeletClientFiles({ "kubelet-client-certificate": file("k2.crt", "C"), "kubelet-client-key": file("k2.key", "K"), "kubelet-certificate-authority": file("kca.crt", "CA") })).toEqual({ cert: "C", key: "K", ca: "CA" });
  });
});
