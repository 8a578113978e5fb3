// `npm run bench -- dns`: (1) the cluster DNS server answering A queries for 2,000 Services over
// UDP and TCP on loopback; (2) what ClusterIP/NodePort allocation adds to a create: Service
// creates next to ConfigMap creates through an apiserver on a real etcd.
import { create } from "@bufbuild/protobuf";
import { parseArgs } from "node:util";
import { ConfigMapSchema } from "../gen/skiff/v1alpha1/config_pb.js";
import { EndpointsSchema, type Endpoints } from "../gen/skiff/v1alpha1/endpoints_pb.js";
import { ServiceSchema, type Service } from "../gen/skiff/v1alpha1/service_pb.js";
import { createResourceClient } from "../internal/client/resource-client.ts";
import { createApiTransport } from "../internal/client/transport.ts";
import { startDnsServer } from "../internal/dns/server.ts";
import { query } from "../internal/dns/testing.ts";
import { createZone } from "../internal/dns/zone.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { startBenchControlPlane } from "./lib/control-plane.ts";
import { runLoad, summarize } from "./lib/stats.ts";
import { fmtMs, renderTable } from "./lib/table.ts";

const HELP = `usage: npm run bench -- dns [--queries N] [--creates N] [--in-process]

  --queries N     DNS queries per UDP phase (default 20000; TCP: a tenth)
  --creates N     Service and ConfigMap creates per phase (default 500)
  --in-process    run the apiserver in this process instead of a child`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { queries: { type: "string", default: "20000" }, creates: { type: "string", default: "500" }, "in-process": { type: "boolean", default: false }, help: { type: "boolean" } } });
  if (values.help) return void console.log(HELP);
  const queries = Number(values.queries);
  const creates = Number(values.creates);

  // 1. DNS: 2,000 ClusterIP Services and 20 headless ones of 10 endpoints each.
  const services = new Map<string, Service>();
  const endpoints = new Map<string, Endpoints>();
  for (let i = 0; i < 2000; i++) {
    services.set(`default/s${i}`, create(ServiceSchema, { metadata: { name: `s${i}`, namespace: "default" }, spec: { clusterIp: `10.96.${i >> 8}.${i & 255}`, ports: [{ port: 80, protocol: "TCP" }] } }));
  }
  for (let i = 0; i < 20; i++) {
    services.set(`default/h${i}`, create(ServiceSchema, { metadata: { name: `h${i}`, namespace: "default" }, spec: { clusterIp: "None" } }));
    endpoints.set(`default/h${i}`, create(EndpointsSchema, { subsets: [{ addresses: Array.from({ length: 10 }, (_, j) => ({ ip: `10.88.${i}.${j + 1}` })) }] }));
  }
  const zone = createZone("cluster.local", { service: (ns, n) => services.get(`${ns}/${n}`), endpoints: (ns, n) => endpoints.get(`${ns}/${n}`) });
  const server = await startDnsServer({ zone, host: "127.0.0.1", port: 0 });
  onCleanup(() => server.close());
  console.log("cluster DNS on 127.0.0.1 (server and load generator share this process's event loop: figures are pessimistic)\n");
  const rows: (string | number)[][] = [];
  const phase = async (label: string, n: number, conc: number, op: (i: number) => Promise<unknown>) => {
    const r = await runLoad(n, conc, op);
    const s = summarize(r.latencies);
    rows.push([label, n, conc, Math.round((n / r.wallMs) * 1000), fmtMs(s.p50), fmtMs(s.p99)]);
  };
  const check = async (p: Promise<{ answers?: unknown[] }>) => {
    if (!(await p).answers?.length) throw new Error("query without an answer");
  };
  await phase("A over UDP, ClusterIP", queries, 32, (i) => check(query(server.port, `s${i % 2000}.default.svc.cluster.local`, "A")));
  await phase("A over UDP, headless (10 IPs)", queries, 32, (i) => check(query(server.port, `h${i % 20}.default.svc.cluster.local`, "A")));
  await phase("A over TCP (new connection each)", Math.max(1, queries / 10), 8, (i) => check(query(server.port, `s${i % 2000}.default.svc.cluster.local`, "A", { tcp: true })));
  console.log(renderTable(["phase", "queries", "in flight", "queries/s", "p50 ms", "p99 ms"], rows, "  "));
  await server.close();

  // 2. Allocation: the same number of Service and ConfigMap creates, alternating rounds.
  const cp = await startBenchControlPlane({ inProcess: values["in-process"] });
  console.log(`\nService create (ClusterIP + NodePort allocation, one etcd txn) vs ConfigMap create; apiserver: ${cp.mode} (${cp.modeNote}); etcd ${cp.etcdVersion}\n`);
  const transport = createApiTransport(cp.url, cp.credentials);
  const svcs = createResourceClient<Service>(transport, "Service");
  const cms = createResourceClient(transport, "ConfigMap");
  const out: (string | number)[][] = [];
  for (const conc of [1, 16]) {
    for (const kind of ["ConfigMap", "Service ClusterIP", "Service NodePort"] as const) {
      const tag = `${kind.replace(/\s.*/, "").toLowerCase()}-${kind.includes("NodePort") ? "np" : "c"}${conc}`;
      const n = kind === "Service NodePort" ? Math.min(creates, 1000) : creates;
      const r = await runLoad(n, conc, (i) =>
        kind === "ConfigMap"
          ? cms.create(create(ConfigMapSchema, { metadata: { name: `${tag}-${i}`, namespace: "default" }, data: { a: "1" } }))
          : svcs.create(create(ServiceSchema, { metadata: { name: `${tag}-${i}`, namespace: "default" }, spec: { type: kind === "Service NodePort" ? "NodePort" : "ClusterIP", ports: [{ port: 80 }] } })),
      );
      const s = summarize(r.latencies);
      out.push([kind, n, conc, Math.round((n / r.wallMs) * 1000), fmtMs(s.p50), fmtMs(s.p99)]);
    }
  }
  console.log(renderTable(["create", "objects", "in flight", "creates/s", "p50 ms", "p99 ms"], out, "  "));
  const all = (await svcs.list("default")).items;
  const ips = new Set(all.map((s) => s.spec!.clusterIp));
  console.log(`\n  ${all.length} Services hold ${ips.size} distinct ClusterIPs`);
  await cp.stopServer();
}
