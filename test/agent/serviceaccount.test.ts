// A pod's ServiceAccount credentials end to end on one real node (containerd + runc, CNI bridge,
// the nftables service proxy): the agent mounts the token (bound to the pod, issued by the
// apiserver), the CA and the namespace read-only at /var/run/secrets/kubernetes.io/serviceaccount,
// nothing with automountServiceAccountToken: false; and the pod reaches the API through the
// `kubernetes` Service (KUBERNETES_SERVICE_HOST:PORT → its Endpoints) to list the pods of its namespace.
import { decodeJwt } from "jose";
import { createServer, connect, type Server, type Socket } from "node:net";
import { randomInt } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reconcileKubernetesService } from "../../internal/apiserver/kubernetes-service.ts";
import { formatIPv4, parseCidr } from "../../internal/network/conflist.ts";
import { cstatus, startCluster, waitFor, type Cluster } from "./cluster.ts";

const CA = "-----BEGIN CERTIFICATE-----\nMIIBdGVzdCBjbHVzdGVyIENB\n-----END CERTIFICATE-----\n";
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
  c = await startCluster({ startAgent: false, controlPlane: { serviceCidr }, agent: { clusterCa: CA } });
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
  it("mounts a pod-bound token, the CA and the namespace read-only, and the pod lists its namespace's pods through the kubernetes Service", async () => {
    const kube = await c.cp.client("Service").get("default", "kubernetes");
    const clusterIp = kube.spec.clusterIp as string;
    const list = [
      `url=http://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/skiff.v1alpha1.PodService/List`,
      // The proxy may still be writing the ClusterIP's rules when the container starts: a few tries.
      `for i in 1 2 3 4 5 6 7 8 9 10; do`,
      `  timeout 5 wget -qO- --header "Authorization: Bearer $(cat ${MOUNT}/token)" --header 'Content-Type: application/json' --post-data '{"namespace":"default"}' "$url" > /tmp/list && break`,
      `  sleep 1`,
      `done`,
      // The listed pod's own command holds the section markers: break them up.
      `sed 's/=== /=_= /g' /tmp/list`,
    ].join("\n");
    const out = await runScript("reader", [
      `echo '=== files'; ls ${MOUNT}`,
      `echo '=== token'; cat ${MOUNT}/token; echo`,
      `echo '=== ca'; cat ${MOUNT}/ca.crt`,
      `echo '=== namespace'; cat ${MOUNT}/namespace; echo`,
      `echo '=== write'; (echo x > ${MOUNT}/token) 2>/dev/null && echo writable || echo refused`,
      `echo '=== env'; echo "$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"`,
      `echo '=== list'; ${list}; echo`,
    ]);
    expect(out.files.split(/\s+/).filter(Boolean).sort()).toEqual(["ca.crt", "namespace", "token"]);
    expect(out.ca).toBe(CA);
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

    // What the pod got back from the API: the pods of its namespace, itself among them.
    const listed = JSON.parse(out.list) as { items: { metadata: { name: string } }[] };
    expect(listed.items.map((i) => i.metadata.name)).toContain("reader");

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
