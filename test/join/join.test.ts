// Joining a machine with a token, for real: an apiserver over TLS on etcd, agents started as
// `skiff agent --server URL --token K10…` in their own network namespace (every multinode
// harness node joins this way), pods on containerd. The refusals (wrong CA, expired, wrong role, a taken node
// name, a deleted token) go through the same client code the agent runs (internal/join).
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { PodService } from "../../gen/skiff/v1alpha1/pod_service_pb.js";
import { joinCluster } from "../../internal/join/agent-join.ts";
import { NODE_IDENTITY_ANNOTATION } from "../../internal/join/node-identity.ts";
import { parseJoinToken } from "../../internal/join/token.ts";
import { issueCert, signedBy } from "../../internal/pki/certs.ts";
import { agentLogTail, createJoinToken, startMultiNode, waitFor, type MultiNodeCluster } from "../harness/multinode.ts";
import { foreignCa } from "../harness/pki.ts";
import { makeTempDir } from "../harness/tmp.ts";

const SKIFF = fileURLToPath(new URL("../../cmd/skiff.ts", import.meta.url));
// Short enough that the test sees a renewal (at 70-90 %) and the first certificate expire.
const CERT_TTL_MS = 60_000;

let c: MultiNodeCluster;
let firstClient: X509Certificate;
let firstServing: X509Certificate;

beforeAll(async () => {
  c = await startMultiNode({ nodes: 1, nodeCertificateTtlMs: CERT_TTL_MS });
  const dataDir = join(c.nodes[0].rootDir, "agent");
  firstClient = new X509Certificate(readFileSync(join(dataDir, "client.crt")));
  firstServing = new X509Certificate(readFileSync(join(dataDir, "serving.crt")));
}, 180_000);

afterAll(async () => {
  await c?.stop();
});

const dirFor = (what: string) => makeTempDir(`skiff-join-${what}-`);
const attempt = (token: string, nodeName: string, server = c.cp.server.url) =>
  joinCluster({ server, token, nodeName, dataDir: dirFor(nodeName), servingSans: [nodeName, "127.0.0.1"] });

async function readLog(name: string): Promise<string> {
  let out = "";
  for await (const chunk of createClient(PodService, c.cp.transport).log({ namespace: "default", name })) out += Buffer.from(chunk.data).toString();
  return out;
}

async function refusal(p: Promise<unknown>): Promise<{ code?: Code; message: string }> {
  try {
    await p;
  } catch (err) {
    return { code: err instanceof ConnectError ? err.code : undefined, message: (err as Error).message };
  }
  throw new Error("expected the join to be refused");
}

describe("an agent that joins with a token", () => {
  it("gets a node identity from the cluster: its Node is Ready and runs a pod whose log the apiserver reads", async () => {
    const n = c.nodes[0];
    const node = await waitFor("the Node Ready", async () => {
      const o = await c.nodeObjects.get("", n.name);
      return o.status?.conditions.some((x) => x.type === "Ready" && x.status === "True") ? o : undefined;
    }, 60_000);
    expect(node.metadata?.annotations[NODE_IDENTITY_ANNOTATION]).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(firstClient.subject.split("\n")).toEqual(expect.arrayContaining(["O=system:nodes", `CN=system:node:${n.name}`]));
    expect(signedBy(firstClient.toString(), c.cp.pki.ca.cert)).toBe(true);
    for (const f of ["ca.crt", "client.crt", "client.key", "serving.crt", "serving.key", "node-secret"]) {
      expect(statSync(join(n.rootDir, "agent", f)).mode & 0o777).toBe(0o600);
    }
    await c.createPod(n, "joined", { containers: [{ name: "app", command: ["sh", "-c", "echo hello from a joined node; exec sleep 3600"] }] });
    await c.waitForRunning("joined", 90_000);
    expect(await waitFor("the pod's log", async () => ((await readLog("joined")) === "hello from a joined node\n" ? true : undefined), 30_000)).toBe(true);
  }, 150_000);

  it("a second machine claiming that node's name is refused, and the Node keeps its identity", async () => {
    const n = c.nodes[0];
    const before = (await c.nodeObjects.get("", n.name)).metadata?.annotations[NODE_IDENTITY_ANNOTATION];
    const r = await refusal(attempt(c.joinToken!, n.name));
    expect(r.code).toBe(Code.AlreadyExists);
    expect(r.message).toContain(`node name "${n.name}" is held by another machine's identity`);
    expect((await c.nodeObjects.get("", n.name)).metadata?.annotations[NODE_IDENTITY_ANNOTATION]).toBe(before);
  });

  it("a server-role token and an expired token are refused, and no Node is left behind", async () => {
    const server = await createJoinToken(c.cp, c.cp.pki.ca.cert, "server", 3_600_000);
    const r1 = await refusal(attempt(server, "with-server-token"));
    expect(r1.code).toBe(Code.PermissionDenied);
    const expired = await createJoinToken(c.cp, c.cp.pki.ca.cert, "agent", -1000);
    const r2 = await refusal(attempt(expired, "with-expired-token"));
    expect(r2.code).toBe(Code.Unauthenticated);
    for (const name of ["with-server-token", "with-expired-token"]) {
      const err = await c.nodeObjects.get("", name).catch((e: unknown) => e);
      expect(ConnectError.from(err).code).toBe(Code.NotFound);
    }
  });

  it("a token whose CA hash does not match the server's CA is refused before the secret is sent", async () => {
    const other = await foreignCa();
    const serving = await issueCert(other.ca, { commonName: "impostor", sans: ["127.0.0.1"], usage: "server" });
    const seen: string[] = [];
    let connections = 0;
    const fake = http2.createSecureServer({ ...serving, allowHTTP1: true }, (req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (d: string) => (body += d));
      req.on("end", () => {
        seen.push(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
        res.writeHead(200, { "content-type": "application/x-pem-file" });
        res.end(other.ca.cert);
      });
    });
    fake.on("secureConnection", () => connections++);
    await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r));
    try {
      const url = `https://127.0.0.1:${(fake.address() as AddressInfo).port}`;
      const r = await refusal(attempt(c.joinToken!, "to-the-impostor", url));
      expect(r.message).toMatch(/is not the one the join token names/);
      expect(seen.map((s) => JSON.parse(s).url)).toEqual(["/cacerts"]);
      expect(connections).toBe(1);
      const { secret } = parseJoinToken(c.joinToken!);
      for (const s of seen) expect(s).not.toContain(secret);
    } finally {
      await new Promise((r) => fake.close(r));
    }
  });

  it("`skiff token list` shows id, role, expiry and description but never the secret; a deleted token is refused", async () => {
    const f = c.cp.pki.files("admin");
    const conn = ["--kubeconfig", "/dev/null", "--server", c.cp.server.url, "--certificate-authority", c.cp.pki.files("ca").cert, "--client-certificate", f.cert, "--client-key", f.key];
    const skiff = async (...args: string[]) => (await promisify(execFile)(process.execPath, [SKIFF, "token", ...args, ...conn], { timeout: 60_000 })).stdout;
    const token = (await skiff("create", "--ttl", "2h", "--description", "ci runner")).trim();
    const { id, secret, caHash } = parseJoinToken(token);
    expect(caHash).toBe(parseJoinToken(c.joinToken!).caHash);
    const list = await skiff("list");
    const row = list.split("\n").find((l) => l.startsWith(id));
    expect(row).toMatch(new RegExp(`^${id}\\s+agent\\s+\\d{4}-\\d\\d-\\d\\dT\\S+\\s+ci runner$`));
    expect(list).not.toContain(secret);
    for (const other of [c.joinToken!]) expect(list).not.toContain(parseJoinToken(other).secret);
    expect(await skiff("delete", id)).toContain(`token ${id} deleted`);
    const r = await refusal(attempt(token, "with-deleted-token"));
    expect(r.code).toBe(Code.Unauthenticated);
  }, 120_000);

  it("renews its certificates before they expire, without a restart, and keeps working after the first ones expired", async () => {
    const n = c.nodes[0];
    const pid = n.agent!.pid;
    await waitFor("a renewal in the agent's log", () => n.agent!.logLines().some((l) => l.msg === "node certificates renewed"), CERT_TTL_MS * 2).catch((err) => {
      throw new Error(`${(err as Error).message}\n${agentLogTail(n)}`);
    });
    expect(n.agent!.pid).toBe(pid);
    const dataDir = join(n.rootDir, "agent");
    const renewedServing = new X509Certificate(readFileSync(join(dataDir, "serving.crt")));
    expect(renewedServing.fingerprint256).not.toBe(firstServing.fingerprint256);
    expect(new X509Certificate(readFileSync(join(dataDir, "client.crt"))).fingerprint256).not.toBe(firstClient.fingerprint256);
    // The agent's port serves the renewed certificate (its TLS context was reloaded).
    const kube = c.cp.pki.kubeletClient;
    const presented = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: n.ip, port: 10250, ca: kube.ca, cert: kube.cert, key: kube.key, servername: n.name, ALPNProtocols: ["h2"] }, () => {
        resolve(s.getPeerX509Certificate()!.fingerprint256);
        s.end();
      });
      s.on("error", reject);
    });
    expect(presented).toBe(renewedServing.fingerprint256);
    // Once the first client certificate expired, restart the apiserver: every connection is new,
    // and the agent still renews its Lease, so it connects with the renewed certificate.
    const firstExpiry = new Date(firstClient.validTo).getTime();
    await new Promise((r) => setTimeout(r, Math.max(0, firstExpiry - Date.now() + 1000)));
    await c.cp.restartApiServer();
    const restarted = Date.now();
    await waitFor("a Lease renewal after the apiserver restarted", async () => {
      const lease = await c.cp.client<Lease>("Lease").get("skiff-system", n.name);
      return lease.spec?.renewTime && timestampMs(lease.spec.renewTime) > restarted ? true : undefined;
    }, CERT_TTL_MS * 2);
    expect(await waitFor("the pod's log via the renewed serving certificate", async () => ((await readLog("joined")) === "hello from a joined node\n" ? true : undefined), 30_000)).toBe(true);
  }, 300_000);

  it("restarting with valid stored credentials skips the join", async () => {
    const n = c.nodes[0];
    await n.restartAgent();
    const msgs = n.agent!.logLines().map((l) => l.msg);
    expect(msgs).toContain("using the stored node credentials (no join needed)");
    expect(msgs).not.toContain("joining the cluster");
    const node = await c.nodeObjects.get("", n.name);
    expect(node.metadata?.name).toBe(n.name);
  }, 120_000);

  it("a Node deleted and registered again by its agent stays claimed by that machine", async () => {
    const n = c.nodes[0];
    const record = (await c.nodeObjects.get("", n.name)).metadata?.annotations[NODE_IDENTITY_ANNOTATION];
    await n.stopAgent();
    await c.nodeObjects.delete("", n.name);
    await n.startAgent();
    expect((await c.nodeObjects.get("", n.name)).metadata?.annotations[NODE_IDENTITY_ANNOTATION]).toBe(record);
    expect((await refusal(attempt(c.joinToken!, n.name))).code).toBe(Code.AlreadyExists);
  }, 120_000);
});

