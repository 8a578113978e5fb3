// skiffctl with Services whose addresses the apiserver allocates: apply, re-apply, get, describe.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import { startCliTestApi, type CliTestApi } from "./testing.ts";

let api: CliTestApi;
let dir: string;
beforeAll(async () => {
  api = await startCliTestApi();
  dir = await mkdtemp(join(tmpdir(), "skiff-cli-svc-"));
});
afterAll(async () => {
  await api?.close();
  await rm(dir, { recursive: true, force: true });
});

const MANIFEST = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
    - {name: http, port: 80, targetPort: http}
    - {name: dns, port: 53, protocol: UDP, targetPort: 5353}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
`;

describe("skiffctl and Service allocation", () => {
  it("applies Services, shows their ClusterIPs and NodePorts like kubectl, and keeps them on re-apply", async () => {
    const file = join(dir, "svc.yaml");
    await writeFile(file, MANIFEST);
    expect(await api.run(["apply", "-f", file])).toMatchObject({ code: 0, out: "service/web created\nservice/db created\n" });
    const web = await api.client<Service>("Service").get("default", "web");
    const [http, dns] = web.spec!.ports;
    const got = await api.run(["get", "svc"]);
    const lines = got.out.trim().split("\n").map((l) => l.split(/\s{2,}/));
    expect(lines[0]).toEqual(["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]);
    expect(lines.find((l) => l[0] === "web")!.slice(0, 5)).toEqual(["web", "NodePort", web.spec!.clusterIp, "<none>", `80:${http.nodePort}/TCP,53:${dns.nodePort}/UDP`]);
    expect(lines.find((l) => l[0] === "db")!.slice(0, 5)).toEqual(["db", "ClusterIP", "None", "<none>", "5432/TCP"]);
    // The manifest carries no clusterIP or nodePort: applying it again changes nothing.
    expect(await api.run(["apply", "-f", file])).toMatchObject({ code: 0, out: "service/web unchanged\nservice/db unchanged\n" });
    const desc = await api.run(["describe", "svc", "web"]);
    expect(desc.out).toMatch(new RegExp(`IP:\\s+${web.spec!.clusterIp.replaceAll(".", "\\.")}`));
    expect(desc.out).toMatch(new RegExp(`NodePort:\\s+http\\s+${http.nodePort}/TCP`));
  });

  it("reports a refused address with its field path", async () => {
    const file = join(dir, "bad.yaml");
    await writeFile(file, "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {clusterIP: 192.0.2.1, ports: [{port: 80}]}\n");
    const r = await api.run(["apply", "-f", file]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("spec.clusterIP: 192.0.2.1 is not in the valid range: the range of valid IPs is 10.96.0.0/12");
  });
});
