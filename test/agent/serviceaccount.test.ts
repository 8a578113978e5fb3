// A pod's ServiceAccount credentials end to end on one real node (containerd + runc, CNI bridge,
// the nftables service proxy): the agent mounts the token (bound to the pod, issued by the
// apiserver), the CA and the namespace read-only at /var/run/secrets/kubernetes.io/serviceaccount,
// nothing with automountServiceAccountToken: false; and the pod reaches the API through the
// `kubernetes` Service in its environment (KUBERNETES_SERVICE_HOST:PORT); its token lists the pods
// of its namespace over TLS (its account is bound to `view`).
import { create } from "@bufbuild/protobuf";
import { decodeJwt } from "jose";
import { createServer, connect, type Server, type Socket } from "node:net";
import { randomInt } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RoleBindingSchema } from "../../gen/skiff/v1alpha1/rbac_pb.js";
import { reconcileKubernetesService } from "../../internal/apiserver/kubernetes-service.ts";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { formatIPv4, parseCidr } from "../../internal/network/conflist.ts";
import { cstatus, startCluster, waitFor, type Cluster } from "./cluster.ts";

const MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";
/** Service addresses of this run: a random /24 of 10.234.0.0/16 (no route on the host touches it). */
const serviceCidr = `10.234.${randomInt(256)}.0/24`;

let c: Cluster;
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
}, 180_000);

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => (forwarder ? forwarder.close(r) : r(undefined)));
  await c?.stop();
});

/** Runs `script` in a busybox pod to completion and returns its output by "=== name" section. */
async function runScript(name: string, script: string[], extra: object = {}): Promise<Record<string, string>> {
  await c.createPod(name, { restartPolicy: "Never", containers: [{ name: "app", command: ["sh", "-c", script.join("\n")] }], ...extra });
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
    const out = await runScript("reader", [
      `echo '=== files'; ls ${MOUNT}`,
      `echo '=== token'; cat ${MOUNT}/token; echo`,
      `echo '=== ca'; cat ${MOUNT}/ca.crt`,
      `echo '=== namespace'; cat ${MOUNT}/namespace; echo`,
      `echo '=== write'; (echo x > ${MOUNT}/token) 2>/dev/null && echo writable || echo refused`,
      `echo '=== env'; echo "$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"`,
    ]);
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

    // What the token the pod read lets it do over TLS: list the pods of its namespace (its account
    // is bound to view), itself among them, and nothing in another namespace. (busybox's wget in
    // the pod fails the TLS handshake with the apiserver, "no shared cipher", so the call is made
    // from here with the pod's token rather than from inside the pod.)
    const asPod = createResourceClient(createApiTransport(c.cp.server.url, { ca: c.cp.pki.ca.cert, token }), "Pod");
    expect((await asPod.list("default")).items.map((i) => i.metadata?.name)).toContain("reader");
    await expect(asPod.list("skiff-system")).rejects.toThrow(/cannot list resource "pods" in API group "" in the namespace "skiff-system"/);

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
