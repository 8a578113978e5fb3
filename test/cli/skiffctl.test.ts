// skiffctl end to end: the real CLI (`node cmd/skiffctl.ts`, as a child process on the Node that
// runs this test) against a real apiserver on a real etcd.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { freePort } from "../harness/ports.ts";
import { adminConfigFile } from "../../internal/cli/testing.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CLI = join(ROOT, "cmd", "skiffctl.ts");
const EXAMPLES = join(ROOT, "deploy", "examples");

let cp: ControlPlane;
let dir: string;

beforeAll(async () => {
  cp = await startControlPlane();
  dir = mkdtempSync(join(tmpdir(), "skiffctl-e2e-"));
});
afterAll(async () => {
  await cp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Result {
  code: number | null;
  out: string;
  err: string;
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, SKIFF_SERVER: cp.server.url, SKIFF_CONFIG: adminConfigFile(), NO_COLOR: "1", ...extra };
}

/** Runs skiffctl to completion. */
function skiffctl(args: string[], opts: { env?: Record<string, string>; stdin?: string } = {}): Promise<Result> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: env(opts.env), stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("error", fail);
    child.on("close", (code) => done({ code, out, err }));
    child.stdin.end(opts.stdin ?? "");
  });
}

/** Starts a long-running skiffctl (get -w) and lets the test wait for its output. */
function startSkiffctl(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: env(), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
    for (const w of [...waiters]) if (w.re.test(out)) w.resolve();
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  return {
    get out() {
      return out;
    },
    waitFor(re: RegExp, ms = 20_000): Promise<void> {
      if (re.test(out)) return Promise.resolve();
      return new Promise((ok, fail) => {
        const t = setTimeout(() => fail(new Error(`timed out waiting for ${re}; stdout so far:\n${out}\nstderr:\n${err}`)), ms);
        waiters.push({ re, resolve: () => (clearTimeout(t), ok()) });
      });
    },
    async stop(): Promise<number | null> {
      if (child.exitCode !== null) return child.exitCode;
      const closed = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
      child.kill("SIGINT");
      return closed;
    },
  };
}

function webManifest(replicas: number, image = "skiff.local/busybox-httpd:v1"): string {
  return readFileSync(join(EXAMPLES, "web.yaml"), "utf8").replace("replicas: 3", `replicas: ${replicas}`).replace("skiff.local/busybox-httpd:v1", image);
}

describe("skiffctl against a real apiserver", () => {
  it("applies the example app: created, then unchanged, then configured", async () => {
    const first = await skiffctl(["apply", "-f", EXAMPLES]);
    expect(first.err).toBe("");
    expect(first.out).toBe("configmap/web-config created\ndeployment.apps/web created\nservice/web created\n");
    expect(first.code).toBe(0);

    const again = await skiffctl(["apply", "-f", EXAMPLES]);
    expect(again.out).toBe("configmap/web-config unchanged\ndeployment.apps/web unchanged\nservice/web unchanged\n");
    expect(again.code).toBe(0);

    const changed = join(dir, "web.yaml");
    writeFileSync(changed, webManifest(5));
    const third = await skiffctl(["apply", "-f", changed]);
    expect(third.out).toBe("deployment.apps/web configured\nservice/web unchanged\n");
    expect(third.code).toBe(0);
    const stored = (await cp.client("Deployment").get("default", "web")) as any;
    expect(stored.spec.replicas).toBe(5);
    expect(stored.metadata.generation).toBe(2n);
  });

  it("gets tables and Kubernetes-shaped YAML, JSON and names", async () => {
    const table = await skiffctl(["get", "deploy,svc"]);
    expect(table.code).toBe(0);
    const lines = table.out.split("\n");
    expect(lines[0]).toMatch(/^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE$/);
    expect(lines[1]).toMatch(/^deployment\.apps\/web\s+0\/5\s+0\s+0\s+\d+s$/);
    expect(table.out).toMatch(/\nNAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\nservice\/kubernetes\s+ClusterIP\s+10\.96\.0\.1\s+<none>\s+443\/TCP\s+\d+s\nservice\/web\s+ClusterIP\s+\S+\s+<none>\s+80\/TCP\s+\d+s\n/);

    const yaml = await skiffctl(["get", "deployment", "web", "-o", "yaml"]);
    expect(yaml.code).toBe(0);
    const d = YAML.parse(yaml.out);
    expect(Object.keys(d).slice(0, 3)).toEqual(["apiVersion", "kind", "metadata"]);
    expect(d).toMatchObject({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "web", namespace: "default", generation: 2 }, spec: { replicas: 5 } });
    const c = d.spec.template.spec.containers[0];
    expect(c.resources.requests).toEqual({ cpu: "50m", memory: "32Mi" });
    expect(c.readinessProbe.httpGet.port).toBe(8080);
    expect(yaml.out).not.toContain("$typeName");

    const json = await skiffctl(["get", "svc", "web", "-o", "json"]);
    const s = JSON.parse(json.out);
    expect(s).toMatchObject({ apiVersion: "v1", kind: "Service", spec: { ports: [{ port: 80, targetPort: 8080, protocol: "TCP" }] } });
    expect(Object.keys(s.spec)).not.toContain("clusterIp");

    const names = await skiffctl(["get", "deploy,svc,cm", "-o", "name", "-l", "app=web"]);
    expect(names.out).toBe("deployment.apps/web\nservice/web\nconfigmap/web-config\n");

    const none = await skiffctl(["get", "pods", "-n", "skiff-system"]);
    expect(none).toMatchObject({ code: 0, out: "", err: "No resources found in skiff-system namespace.\n" });

    const all = await skiffctl(["get", "ns", "-A"]);
    expect(all.out).toMatch(/^NAME\s+STATUS\s+AGE\ndefault\s+Active\s+\d+\w\n/);
  });

  it("watches: prints the current rows, then a change as it happens", async () => {
    const watch = startSkiffctl(["get", "deployments", "-w"]);
    try {
      await watch.waitFor(/^NAME\s+READY.*\nweb\s+0\/5\s/m);
      writeFileSync(join(dir, "web2.yaml"), webManifest(2));
      expect((await skiffctl(["apply", "-f", join(dir, "web2.yaml")])).out).toContain("deployment.apps/web configured");
      await watch.waitFor(/\nweb\s+0\/2\s/);
      expect(await watch.stop()).toBe(0); // Ctrl-C ends a watch quietly
    } finally {
      await watch.stop();
    }
    const yamlWatch = startSkiffctl(["get", "svc", "web", "-w", "-o", "yaml"]);
    try {
      await yamlWatch.waitFor(/kind: Service/);
      const svc = (await cp.client("Service").get("default", "web")) as any;
      svc.metadata.labels.tier = "front";
      await cp.client("Service").update(svc);
      await yamlWatch.waitFor(/tier: front/);
    } finally {
      await yamlWatch.stop();
    }
  });

  it("describes a deployment with its events", async () => {
    await cp.client("Event").create({
      metadata: { name: "web.1", namespace: "default" },
      involvedObject: { kind: "Deployment", name: "web", namespace: "default" },
      reason: "ScalingReplicaSet",
      message: "Scaled up replica set web-abc to 2",
      type: "Normal",
      source: { component: "deployment-controller" },
    } as any);
    const r = await skiffctl(["describe", "deploy", "web"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Name:\s+web\nNamespace:\s+default\nLabels:\s+app=web\nAnnotations:\s+<none>\n/);
    expect(r.out).toMatch(/Replicas:\s+2 desired \| 0 updated \| 0 total \| 0 available \| 0 unavailable/);
    expect(r.out).toMatch(/StrategyType:\s+RollingUpdate/);
    expect(r.out).toMatch(/Image:\s+skiff\.local\/busybox-httpd:v1/);
    expect(r.out).toMatch(/Events:\n\s+Type\s+Reason\s+Age\s+From\s+Message\n.*\n\s+Normal\s+ScalingReplicaSet\s+\S+\s+deployment-controller\s+Scaled up replica set web-abc to 2\n$/);
    const svc = await skiffctl(["describe", "svc", "web"]);
    expect(svc.out).toMatch(/TargetPort:\s+8080\/TCP/);
    expect(svc.out).toMatch(/Events: {2}<none>\n$/);
  });

  it("deletes by name, by file and by selector", async () => {
    await cp.client("ConfigMap").create({ metadata: { name: "extra", namespace: "default", labels: { app: "extra" } }, data: { a: "1" } } as any);
    const bySelector = await skiffctl(["delete", "cm", "-l", "app=extra"]);
    expect(bySelector).toMatchObject({ code: 0, out: 'configmap "extra" deleted\n' });

    const byFile = await skiffctl(["delete", "-f", join(EXAMPLES, "web.yaml"), "--cascade", "background"]);
    expect(byFile.out).toBe('deployment.apps "web" deleted\nservice "web" deleted\n');
    expect(byFile.code).toBe(0);

    const byName = await skiffctl(["delete", "configmap", "web-config", "--grace-period", "0"]);
    expect(byName).toMatchObject({ code: 0, out: 'configmap "web-config" deleted\n' });

    const gone = await skiffctl(["get", "deployment", "web"]);
    expect(gone).toMatchObject({ code: 1, out: "", err: 'Error: deployment "web" not found\n' });
  });

  it("fails clearly with exit code 1", async () => {
    const down = await skiffctl(["get", "pods"], { env: { SKIFF_SERVER: `https://127.0.0.1:${await freePort()}` } });
    expect(down.code).toBe(1);
    expect(down.err).toMatch(/^Error: cannot reach the apiserver at https:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED .*\n$/);

    const unknown = await skiffctl(["get", "widgets"]);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/^Error: unknown resource type "widgets"; known types: .*deployments \(deploy\).*\n$/);

    const missing = await skiffctl(["get", "pod", "x"]);
    expect(missing).toMatchObject({ code: 1, err: 'Error: pod "x" not found\n' });
    const missingDescribe = await skiffctl(["describe", "pod", "x"]);
    expect(missingDescribe).toMatchObject({ code: 1, err: 'Error: pod "x" not found\n' });
    expect((await skiffctl(["delete", "pod", "x"])).err).toBe('Error: pod "x" not found\n');

    const unsupported = join(dir, "unsupported.yaml");
    writeFileSync(unsupported, webManifest(1).replace("      containers:", "      shareProcessNamespace: true\n      containers:"));
    const u = await skiffctl(["apply", "-f", unsupported]);
    expect(u.code).toBe(1);
    // The file's other document (the Service) is applied all the same, as kubectl does.
    expect(u.out).toMatch(/^service\/web (created|unchanged)\n$/);
    expect(u.err).toBe(`Error: ${unsupported}: document 1 (Deployment web): unsupported field spec.template.spec.shareProcessNamespace (Skiff does not support it yet)\n`);

    const q = await skiffctl(["apply", "-f", "-"], { stdin: webManifest(1).replace("cpu: 50m", "cpu: fast") });
    expect(q.code).toBe(1);
    expect(q.err).toMatch(/^Error: <stdin>: document 1 \(Deployment web\): spec\.template\.spec\.containers\[0\]\.resources\.requests\.cpu: invalid quantity "fast"/);

    const syntax = await skiffctl(["apply", "-f", "-"], { stdin: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: {}\n" });
    expect(syntax.code).toBe(1);
    expect(syntax.err).toMatch(/^Error: <stdin>: YAML syntax error: .* at line 5, column \d+\n$/);

    // Decodes fine, but the server rejects it: its field messages come through.
    const invalid = await skiffctl(["apply", "-f", "-"], { stdin: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\nspec:\n  containers: []\n" });
    expect(invalid.code).toBe(1);
    expect(invalid.err).toMatch(/^Error: <stdin>: document 1 \(Pod Bad_Name\): Pod "Bad_Name" is invalid: .*spec\.containers: .*metadata\.name: /);

    const wrongVersion = await skiffctl(["apply", "-f", "-"], { stdin: "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: old}\n" });
    expect(wrongVersion.err).toBe('Error: <stdin>: document 1 (Deployment old): Deployment has apiVersion "apps/v1", not "extensions/v1beta1"\n');
    expect(wrongVersion.code).toBe(1);
  });

  it("reads the server and credentials from the config file's current context", async () => {
    const cfg = { SKIFF_SERVER: "", SKIFF_CONFIG: join(dir, "cfg", "config.yaml") };
    const { pki } = cp;
    for (const args of [
      ["config", "set-cluster", "test", "--server", cp.server.url, "--certificate-authority", pki.files("ca").cert],
      ["config", "set-credentials", "admin", "--client-certificate", pki.files("admin").cert, "--client-key", pki.files("admin").key],
      ["config", "set-context", "admin@test", "--cluster", "test", "--user", "admin"],
      ["config", "use-context", "admin@test"],
    ]) {
      expect(await skiffctl(args, { env: cfg })).toMatchObject({ code: 0, err: "" });
    }
    expect((await skiffctl(["config", "current"], { env: cfg })).out).toBe(`${cp.server.url}\n`);
    const r = await skiffctl(["get", "namespaces", "-o", "name"], { env: cfg });
    expect(r).toMatchObject({ code: 0, out: "namespace/default\nnamespace/skiff-system\n" });
  });
});
