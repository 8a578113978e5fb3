// skiffctl create namespace|serviceaccount|configmap|secret generic|deployment: kubectl's generators.
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { containerNameOf } from "./commands/create-objects.ts";
import { startCliTestApi, type CliTestApi } from "./testing.ts";

let api: CliTestApi;
let dir: string;
beforeAll(async () => {
  api = await startCliTestApi();
  await api.client("Namespace").create(create(NamespaceSchema, { metadata: { name: "apps" } }));
  dir = mkdtempSync(join(tmpdir(), "create-objects-"));
});
afterAll(async () => {
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("skiffctl create (generators)", () => {
  it("creates a namespace and a ServiceAccount in it, and says AlreadyExists in one line the second time", async () => {
    const r = await api.run(["create", "namespace", "team-a"]);
    expect(r.err).toBe("");
    expect(r.out).toBe("namespace/team-a created\n");
    expect((await api.client("Namespace").get("", "team-a")).metadata!.name).toBe("team-a");

    const sa = await api.run(["create", "sa", "builder", "-n", "team-a"]);
    expect(sa.out).toBe("serviceaccount/builder created\n");
    expect((await api.client("ServiceAccount").get("team-a", "builder")).metadata!.namespace).toBe("team-a");

    const again = await api.run(["create", "ns", "team-a"]);
    expect(again.code).not.toBe(0);
    expect(again.err.trim().split("\n")).toHaveLength(1);
    expect(again.err).toMatch(/already exists/i);
  });

  it("builds a ConfigMap from literals, a file under its name or a key, and a directory", async () => {
    writeFileSync(join(dir, "app.properties"), "color=blue\n");
    mkdirSync(join(dir, "conf"));
    writeFileSync(join(dir, "conf", "a.txt"), "A");
    writeFileSync(join(dir, "conf", "b.txt"), "B");
    const r = await api.run([
      "create", "configmap", "settings", "-n", "apps",
      "--from-literal", "mode=fast", "--from-literal=empty=",
      "--from-file", join(dir, "app.properties"), "--from-file", `renamed=${join(dir, "app.properties")}`,
      "--from-file", join(dir, "conf"),
    ]);
    expect(r.err).toBe("");
    expect(r.out).toBe("configmap/settings created\n");
    const cm = await api.client("ConfigMap").get("apps", "settings");
    expect(cm.data).toEqual({ mode: "fast", empty: "", "app.properties": "color=blue\n", renamed: "color=blue\n", "a.txt": "A", "b.txt": "B" });
  });

  it("refuses a key given twice and a literal without =, storing nothing", async () => {
    const twice = await api.run(["create", "cm", "dup", "-n", "apps", "--from-literal", "k=1", "--from-literal", "k=2"]);
    expect(twice.code).not.toBe(0);
    expect(twice.err).toMatch(/the key "k" is given more than once/);
    const bad = await api.run(["create", "cm", "dup", "-n", "apps", "--from-literal", "novalue"]);
    expect(bad.err).toMatch(/--from-literal must be KEY=VALUE/);
    await expect(api.client("ConfigMap").get("apps", "dup")).rejects.toThrow(/not found/i);
  });

  it("creates a generic Secret whose data reads back byte for byte, with its type", async () => {
    writeFileSync(join(dir, "key.bin"), Buffer.from([0, 255, 10, 13]));
    const r = await api.run(["create", "secret", "generic", "creds", "-n", "apps", "--from-literal", "password=s3 cr=t", "--from-file", `key=${join(dir, "key.bin")}`, "--type", "example.com/custom"]);
    expect(r.err).toBe("");
    expect(r.out).toBe("secret/creds created\n");
    const s = await api.client("Secret").get("apps", "creds");
    expect(s.type).toBe("example.com/custom");
    expect(Buffer.from(s.data.password).toString()).toBe("s3 cr=t");
    expect([...s.data.key]).toEqual([0, 255, 10, 13]);
  });

  it("creates a Deployment with kubectl's shape: app label, selector, replicas, port and a command", async () => {
    const r = await api.run(["create", "deployment", "web", "-n", "apps", "--image", "registry.local:5000/team/web-server:1.2", "--replicas", "3", "--port", "8080", "--", "httpd", "-f"]);
    expect(r.err).toBe("");
    expect(r.out).toBe("deployment.apps/web created\n");
    const d = await api.client("Deployment").get("apps", "web");
    expect(d.metadata.labels).toEqual({ app: "web" });
    expect(d.spec.replicas).toBe(3);
    expect(d.spec.selector.matchLabels).toEqual({ app: "web" });
    expect(d.spec.template.metadata.labels).toEqual({ app: "web" });
    const [c] = d.spec.template.spec.containers;
    expect(c).toMatchObject({ name: "web-server", image: "registry.local:5000/team/web-server:1.2", command: ["httpd", "-f"] });
    expect(c.ports[0].containerPort).toBe(8080);
  });

  it("prints a manifest with --dry-run=client -o yaml without storing it; --dry-run=server stores nothing either", async () => {
    const r = await api.run(["create", "deploy", "preview", "-n", "apps", "--image", "busybox", "--dry-run=client", "-o", "yaml"]);
    expect(r.err).toBe("");
    const m = parse(r.out);
    expect(m).toMatchObject({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "preview", namespace: "apps" }, spec: { replicas: 1 } });
    expect(m.spec.template.spec.containers[0]).toMatchObject({ name: "busybox", image: "busybox" });
    const server = await api.run(["create", "ns", "ghost", "--dry-run=server"]);
    expect(server.out).toBe("namespace/ghost created (server dry run)\n");
    await expect(api.client("Deployment").get("apps", "preview")).rejects.toThrow(/not found/i);
    await expect(api.client("Namespace").get("", "ghost")).rejects.toThrow(/not found/i);
  });

  it("says what is missing or wrong in one line", async () => {
    expect((await api.run(["create", "deployment", "x"])).err).toMatch(/--image IMAGE is required/);
    expect((await api.run(["create", "deployment", "x", "--image", "i", "--port", "70000"])).err).toMatch(/--port must be a port number/);
    expect((await api.run(["create", "deployment", "x", "--image", "i", "--replicas", "-1"])).err).toMatch(/replicas/);
    expect((await api.run(["create", "namespace"])).err).toMatch(/give exactly one name/);
    expect((await api.run(["create", "namespace", "Bad_Name"])).err).toMatch(/name/i);
    expect((await api.run(["create", "namespace", "x", "--dry-run=maybe"])).err).toMatch(/--dry-run must be none, client or server/);
  });

  it("names a container after the image's last path element", () => {
    expect(containerNameOf("busybox")).toBe("busybox");
    expect(containerNameOf("127.0.0.1:5000/a/b/nginx:1.25")).toBe("nginx");
    expect(containerNameOf("repo/Web_App@sha256:abc")).toBe("web-app");
  });
});
