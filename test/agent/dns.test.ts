// Cluster DNS and Service variables end to end on one real node: the apiserver allocates the
// Service's ClusterIP, the endpoints controller lists the headless Service's pods, the agent
// serves DNS on its pod bridge's gateway, and a busybox container (real containerd + runc, CNI
// bridge) resolves names over UDP with its own resolv.conf and fetches a page by name.
import { create } from "@bufbuild/protobuf";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import { ServiceSchema, type Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import { createControllerManager, type ControllerManager } from "../../internal/controller/manager.ts";
import { query } from "../../internal/dns/testing.ts";
import { parseCidr, formatIPv4 } from "../../internal/network/conflist.ts";
import { INDEX_HTML, cstatus, startCluster, waitFor, type Cluster } from "./cluster.ts";

let c: Cluster;
let cm: ControllerManager;
const running = new AbortController();

beforeAll(async () => {
  c = await startCluster();
  cm = createControllerManager({ transport: c.cp.transport, log: pino({ level: "silent" }), options: { controllers: ["endpoints"], leaderElect: false } });
  void cm.start(running.signal);
});
afterAll(async () => {
  running.abort();
  await cm?.stop();
  await c?.stop();
});

function service(name: string, spec: object): Service {
  return create(ServiceSchema, { metadata: { name, namespace: "default" }, spec: spec as any });
}

async function backend(name: string, app: string) {
  const p = c.pod(name);
  p.metadata!.labels = { app };
  await c.pods.create(p);
  return c.waitForPod(name, "Running with an IP", (x) => x.status?.phase === "Running" && x.status.podIp !== "");
}

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

describe("cluster DNS from a pod", () => {
  it("resolves Services by full and short name, a headless Service to its pods, and gives resolv.conf and env vars", async () => {
    const svcs = c.cp.client<Service>("Service");
    const web = await svcs.create(service("web", { selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: "80" }] }));
    const webIP = web.spec!.clusterIp;
    expect(webIP).toMatch(/^10\.(9[6-9]|10[0-9]|11[01])\./); // from 10.96.0.0/12
    await svcs.create(service("db", { clusterIp: "None", selector: { app: "db" }, ports: [{ name: "http", port: 80, targetPort: "80" }] }));
    const dbPods = await Promise.all([backend("db-0", "db"), backend("db-1", "db")]);
    const dbIPs = dbPods.map((p) => p.status!.podIp).sort();
    // The agent answers from its Endpoints informer: wait until the controller has written them.
    const eps = c.cp.client<Endpoints>("Endpoints");
    await waitFor("db endpoints", async () => {
      const ep = await eps.get("default", "db").catch(() => undefined);
      return (ep?.subsets.flatMap((s) => s.addresses).length ?? 0) === 2 || undefined;
    }, 30_000);
    const gateway = formatIPv4(parseCidr(c.podCidr).first);

    const out = await runScript("client", [
      "echo '=== resolv'; cat /etc/resolv.conf",
      "echo '=== env'; env | grep -E '^(WEB|DB)_' || true",
      "echo '=== full'; nslookup web.default.svc.cluster.local",
      "echo '=== short'; nslookup web",
      "echo '=== headless'; nslookup db",
      "echo '=== pod'; nslookup " + dbIPs[0].replaceAll(".", "-") + ".default.pod.cluster.local",
      "echo '=== missing'; nslookup nosuch.default.svc.cluster.local; echo \"rc=$?\"",
      "echo '=== outside'; nslookup example.org; echo \"rc=$?\"",
      // wget looks the name up through the C library (search domains from resolv.conf). Its -T
      // option crashes busybox-static 1.35, so no timeout here: the pod's own wait bounds it.
      "echo '=== fetch'; wget -qO- http://db/",
      "echo '=== end'",
    ]);

    expect(out.resolv).toBe(`nameserver ${gateway}\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`);
    const env = Object.fromEntries(out.env.trim().split("\n").map((l) => l.split("=") as [string, string]));
    expect(env).toMatchObject({
      WEB_SERVICE_HOST: webIP,
      WEB_SERVICE_PORT: "80",
      WEB_SERVICE_PORT_HTTP: "80",
      WEB_PORT: `tcp://${webIP}:80`,
      WEB_PORT_80_TCP_ADDR: webIP,
    });
    expect(Object.keys(env).filter((k) => k.startsWith("DB_"))).toEqual([]); // headless: no variables
    // busybox nslookup prints the server it asked, then the answers.
    expect(out.full).toContain(`Server:\t\t${gateway}`);
    expect(out.full).toMatch(new RegExp(`Name:\\s+web\\.default\\.svc\\.cluster\\.local\\nAddress: ${webIP.replaceAll(".", "\\.")}`));
    expect(out.short).toContain(`Address: ${webIP}`);
    const headless = [...out.headless.matchAll(/Address: (\d+\.\d+\.\d+\.\d+)$/gm)].map((m) => m[1]).filter((ip) => ip !== gateway).sort();
    expect(headless).toEqual(dbIPs);
    expect(out.pod).toContain(`Address: ${dbIPs[0]}`);
    expect(out.missing).toContain("NXDOMAIN");
    expect(out.missing).toContain("rc=1");
    expect(out.outside).toMatch(/REFUSED|NXDOMAIN/);
    expect(out.outside).toContain("rc=1");
    expect(out.fetch).toBe(INDEX_HTML);
  });

  it("follows Service changes, and answers over TCP too (asked from the host, at the node's DNS address)", async () => {
    const gateway = formatIPv4(parseCidr(c.podCidr).first);
    const ask = (name: string, tcp = false) => query(53, name, "A", { host: gateway, tcp });
    const svcs = c.cp.client<Service>("Service");
    const late = await svcs.create(service("late", { selector: { app: "late" }, ports: [{ port: 80, targetPort: "80" }] }));
    await waitFor("late in DNS", async () => (await ask("late.default.svc.cluster.local")).rcode === "NOERROR" || undefined, 10_000);
    for (const tcp of [false, true]) {
      const r = await ask("late.default.svc.cluster.local", tcp);
      expect(r.answers!.map((a: any) => a.data)).toEqual([late.spec!.clusterIp]);
    }
    await svcs.delete("default", "late");
    await waitFor("late gone from DNS", async () => (await ask("late.default.svc.cluster.local")).rcode === "NXDOMAIN" || undefined, 10_000);
  });
});
