// skiffctl with Services whose addresses the apiserver allocates: apply, re-apply, get, describe.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
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

  it("stores and shows the IPv4 single-stack address family fields, as Kubernetes reports them", async () => {
    const file = join(dir, "families.yaml");
    await writeFile(file, "apiVersion: v1\nkind: Service\nmetadata: {name: fam}\nspec:\n  ipFamilies: [IPv4]\n  ipFamilyPolicy: SingleStack\n  ports: [{port: 80}]\n");
    expect(await api.run(["apply", "-f", file])).toMatchObject({ code: 0, out: "service/fam created\n" });
    // A manifest without them gets the same defaults: nothing to change.
    await writeFile(file, "apiVersion: v1\nkind: Service\nmetadata: {name: fam}\nspec:\n  ports: [{port: 80}]\n");
    expect(await api.run(["apply", "-f", file])).toMatchObject({ code: 0, out: "service/fam unchanged\n" });
    const svc = await api.client<Service>("Service").get("default", "fam");
    expect([svc.spec!.ipFamilies, svc.spec!.ipFamilyPolicy]).toEqual([["IPv4"], "SingleStack"]);
    expect((await api.run(["get", "svc", "fam", "-o", "yaml"])).out).toMatch(/ipFamilies:\n\s+- IPv4\n\s+ipFamilyPolicy: SingleStack\n/);
    const desc = (await api.run(["describe", "svc", "fam"])).out;
    expect(desc).toMatch(/IP Family Policy:\s+SingleStack\n/);
    expect(desc).toMatch(/IP Families:\s+IPv4\n/);
  });

  it("refuses what the service proxy does not do, at apply and at the apiserver, naming each field", async () => {
    const file = join(dir, "dual.yaml");
    await writeFile(file, "apiVersion: v1\nkind: Service\nmetadata: {name: dual}\nspec:\n  ipFamilyPolicy: RequireDualStack\n  ports: [{port: 80}]\n");
    const r = await api.run(["apply", "-f", file]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`Error: ${file}: document 1 (Service dual): spec.ipFamilyPolicy: unsupported value "RequireDualStack" (Skiff does not support it yet)\n`);
    // Any other client gets the apiserver's refusal: INVALID_ARGUMENT with every field path.
    const services = api.client<Service>("Service");
    const err = await services
      .create({
        metadata: { name: "sticky", namespace: "default" },
        spec: { sessionAffinity: "None", sessionAffinityConfig: { clientIp: { timeoutSeconds: 60 } }, ipFamilies: ["IPv6"], ports: [{ port: 80 }] },
      } as any)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toContain('spec.sessionAffinityConfig: may only be set with sessionAffinity "ClientIP"');
    expect((err as ConnectError).rawMessage).toContain("spec.ipFamilies[0]: ");
    await expect(services.get("default", "sticky")).rejects.toThrow(/not found/);
  });

  it("accepts session affinity and the Local traffic policies as Kubernetes writes them, defaulting the affinity timeout", async () => {
    const file = join(dir, "sticky.yaml");
    const spec = "  type: NodePort\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}\n  externalTrafficPolicy: Local\n  internalTrafficPolicy: Local\n  ports: [{port: 80}]\n";
    await writeFile(file, `apiVersion: v1\nkind: Service\nmetadata: {name: sticky}\nspec:\n${spec}---\napiVersion: v1\nkind: Service\nmetadata: {name: sticky-default}\nspec:\n  sessionAffinity: ClientIP\n  ports: [{port: 80}]\n`);
    const r = await api.run(["apply", "-f", file]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(await api.run(["apply", "-f", file])).toMatchObject({ code: 0, out: "service/sticky unchanged\nservice/sticky-default unchanged\n" });
    const desc = (await api.run(["describe", "svc", "sticky"])).out;
    expect(desc).toMatch(/Session Affinity Timeout:\s+600s\n/);
    expect(desc).toMatch(/External Traffic Policy:\s+Local\n/);
    const yaml = (await api.run(["get", "svc", "sticky", "-o", "yaml"])).out;
    expect(yaml).toMatch(/sessionAffinityConfig:\n\s+clientIP:\n\s+timeoutSeconds: 600\n/);
    expect(yaml).toMatch(/externalTrafficPolicy: Local\n/);
    expect(yaml).toMatch(/internalTrafficPolicy: Local\n/);
    const services = api.client<Service>("Service");
    expect((await services.get("default", "sticky-default")).spec!.sessionAffinityConfig?.clientIp?.timeoutSeconds).toBe(10_800);
    const err = await services
      .create({ metadata: { name: "long", namespace: "default" }, spec: { sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIp: { timeoutSeconds: 90_000 } }, ports: [{ port: 80 }] } } as any)
      .catch((e: unknown) => e);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toContain("timeoutSeconds");
  });
});
