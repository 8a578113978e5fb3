// A pod's ServiceAccount credentials end to end on one real node (containerd + runc, CNI bridge,
// the nftables service proxy): the agent mounts the token (bound to the pod, issued by the
// apiserver), the CA and the namespace read-only at /var/run/secrets/kubernetes.io/serviceaccount,
// nothing with automountServiceAccountToken: false; and the pod reaches the API through the
// `kubernetes` Service in its environment (KUBERNETES_SERVICE_HOST:PORT); its token lists the pods
// of its namespace over TLS (its account is bound to `view`), verifying the apiserver with the
// mounted CA, and is refused in another namespace.
//
// The in-pod client is `openssl s_client` (the host's binary and its libraries in a test image), not
// busybox's wget: without an `openssl` to exec, busybox 1.35's wget falls back to its built-in TLS,
// whose ClientHello has no signature_algorithms extension, so TLS 1.2 makes the server sign with
// SHA-1, which OpenSSL 3 refuses at its default security level ("no shared cipher" with the
// apiserver's ECDSA key); it checks no certificate either.
import { create } from "@bufbuild/protobuf";
import { decodeJwt } from "jose";
import { execFileSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { createServer, connect, type Server, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RoleBindingSchema } from "../../gen/skiff/v1alpha1/rbac_pb.js";
import { reconcileKubernetesService } from "../../internal/apiserver/kubernetes-service.ts";
import { formatIPv4, parseCidr } from "../../internal/network/conflist.ts";
import { buildBusyboxImage } from "../harness/images.ts";
import { cstatus, startCluster, waitFor, type Cluster } from "./cluster.ts";

const MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";
/** Service addresses of this run: a random /24 of 10.234.0.0/16 (no route on the host touches it). */
const serviceCidr = `10.234.${randomInt(256)}.0/24`;

let c: Cluster;
/** The test image plus `openssl` and the shared libraries it loads. */
let opensslImage: string;
let forwarder: Server | undefined;
const sockets = new Set<Socket>();

/**
 * The apiserver of the harness listens on loopback, which pods cannot reach: forward the pod
 * bridge's gateway address (this host, as pods see it) to it, and advertise that address.
 */
async function exposeApiServer(): Promise<void> {
  const gateway = formatIPv4(parseCidr(c.podCidr).first);
  const port = c.cp.server.port;
  forwarder = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => s.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    forwarder!.once("error", reject);
    forwarder!.listen(port, gateway, () => resolve());
  });
  await reconcileKubernetesService({ ops: c.cp.server.ops, serviceCidr, advertiseAddress: gateway, port });
}

beforeAll(async () => {
  // The agent hands pods the cluster CA (test/agent/cluster.ts passes the test PKI's).
  c = await startCluster({ startAgent: false, controlPlane: { serviceCidr } });
  // The service proxy programs the kubernetes Service's ClusterIP; the agent's start makes the bridge.
  await c.restartAgent({ proxy: { table: c.networkName, minSyncIntervalMs: 100, resyncMs: 2000 } });
  await exposeApiServer();
  opensslImage = await importOpensslImage();
}, 180_000);

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => (forwarder ? forwarder.close(r) : r(undefined)));
  await c?.stop();
});

async function importOpensslImage(): Promise<string> {
  const binary = execFileSync("sh", ["-c", "command -v openssl"], { encoding: "utf8" }).trim();
  // ldd lines: "libssl.so.3 => /lib/…/libssl.so.3 (0x…)" and "/lib64/ld-linux-x86-64.so.2 (0x…)".
  const libs = [...execFileSync("ldd", [binary], { encoding: "utf8" }).matchAll(/(?:=> )?(\/\S+) \(0x/g)].map((m) => m[1]);
  const image = await buildBusyboxImage(join(c.dir, "openssl-image"), {
    name: "skiff.test/busybox-openssl",
    tag: "v1",
    env: [`PATH=/bin:${dirname(binary)}`],
    hostFiles: [binary, ...libs],
  });
  await c.runtime.importImage(image.tarPath);
  return image.ref;
}

/** Runs `script` in a busybox pod to completion and returns its output by "=== name" section. */
async function runScript(name: string, script: string[], extra: object = {}, image?: string): Promise<Record<string, string>> {
  await c.createPod(name, { restartPolicy: "Never", containers: [{ name: "app", ...(image ? { image } : {}), command: ["sh", "-c", script.join("\n")] }], ...extra });
  const p = await c.waitForPod(name, "finished", (x) => x.status?.phase === "Succeeded" || x.status?.phase === "Failed", 60_000);
  const out = await c.logs(name);
  expect(cstatus(p)!.state!.terminated?.exitCode, out).toBe(0);
  const sections: Record<string, string> = {};
  for (const part of out.split("=== ").slice(1)) {
    const nl = part.indexOf("\n");
    sections[part.slice(0, nl)] = part.slice(nl + 1);
  }
  return sections;
}

describe("ServiceAccount credentials in a pod", () => {
  it("mounts a pod-bound token, the CA and the namespace read-only; the token lists its namespace's pods", async () => {
    // The pod's account may read its namespace, as a user would grant it.
    await c.cp.client("RoleBinding").create(
      create(RoleBindingSchema, {
        metadata: { name: "default-view", namespace: "default" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "view" },
        subjects: [{ kind: "ServiceAccount", name: "default", namespace: "default" }],
      }),
    );
    const kube = await c.cp.client("Service").get("default", "kubernetes");
    const clusterIp = kube.spec.clusterIp as string;
    const out = await runScript(
      "reader",
      [
        `echo '=== files'; ls ${MOUNT}`,
        `echo '=== token'; cat ${MOUNT}/token; echo`,
        `echo '=== ca'; cat ${MOUNT}/ca.crt`,
        `echo '=== namespace'; cat ${MOUNT}/namespace; echo`,
        `echo '=== write'; (echo x > ${MOUNT}/token) 2>/dev/null && echo writable || echo refused`,
        `echo '=== env'; echo "$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"`,
        // PodService.List as a Connect JSON call over HTTP/1.1, to the Service's address, trusting
        // only the mounted CA and checking the certificate names the apiserver ($2).
        String.raw`list() {
          body="{\"namespace\":\"$1\"}"
          printf 'POST /skiff.v1alpha1.PodService/List HTTP/1.1\r\nHost: kubernetes.default.svc\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nConnect-Protocol-Version: 1\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' "$(cat ${MOUNT}/token)" "$(printf %s "$body" | wc -c)" "$body" |
            openssl s_client -quiet -connect "$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT" -servername kubernetes.default.svc -CAfile ${MOUNT}/ca.crt -verify_return_error -verify_hostname "$2" 2>&1
          echo
        }`,
        `echo '=== own'; list default kubernetes.default.svc`,
        `echo '=== other'; list skiff-system kubernetes.default.svc`,
        `echo '=== misnamed'; list default not-the-apiserver.test`,
      ],
      {},
      opensslImage,
    );
    expect(out.files.split(/\s+/).filter(Boolean).sort()).toEqual(["ca.crt", "namespace", "token"]);
    expect(out.ca).toBe(c.cp.pki.ca.cert);
    expect(out.namespace.trim()).toBe("default");
    expect(out.write.trim()).toBe("refused");
    expect(out.env.trim()).toBe(`${clusterIp}:443`);

    // The token is the apiserver's, for the pod's account, bound to this very pod.
    const token = out.token.trim();
    const pod = (await c.getPod("reader"))!;
    const claims = decodeJwt(token) as { sub: string; "kubernetes.io": { pod: { name: string; uid: string } } };
    expect(claims.sub).toBe("system:serviceaccount:default:default");
    expect(claims["kubernetes.io"].pod).toEqual({ name: "reader", uid: pod.metadata!.uid });
    const verified = await c.cp.server.serviceAccountAuthenticator.verify(token);
    expect(verified).toMatchObject({ ok: true, user: { name: "system:serviceaccount:default:default" } });

    // What the pod did with that token over TLS through the kubernetes Service: listed the pods
    // of its namespace (its account is bound to view), itself among them; was refused in another
    // namespace; and would not talk to a server whose certificate does not carry the name it expects.
    expect(out.own).toMatch(/^HTTP\/1\.1 200 /m);
    expect(out.own).toContain(`"name":"reader"`);
    expect(out.other).toMatch(/^HTTP\/1\.1 403 /m);
    expect(out.other).toContain(`cannot list resource \\"pods\\" in API group \\"\\" in the namespace \\"skiff-system\\"`);
    expect(out.misnamed).not.toContain("HTTP/1.1");
    expect(out.misnamed).toMatch(/verify error:num=62:hostname mismatch/);

    // Deleting the pod ends its token.
    await c.pods.delete("default", "reader");
    await c.waitForGone("reader");
    await waitFor("token refused", async () => {
      const r = await c.cp.server.serviceAccountAuthenticator.verify(token);
      return r?.ok === false && r.reason.includes("no longer exists");
    });
  });

  it("mounts nothing with automountServiceAccountToken: false", async () => {
    const out = await runScript("quiet", [`echo '=== files'; ls ${MOUNT} 2>&1 || echo none`, `echo '=== dir'; ls /var/run/secrets 2>&1 || echo none`], { automountServiceAccountToken: false });
    expect(out.files).toContain("none");
    expect(out.dir).toContain("none");
  });
});
