// A client we did not write: `buf curl` (from @bufbuild/buf) drives the API over the gRPC protocol
// over TLS using only the .proto files: create, get, list, and a watch that sees a change, with
// the admin's client certificate; and with a bearer token instead.
import { spawn, execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStaticTokenAuthenticator } from "../../internal/auth/authn/token-file.ts";
import { create } from "@bufbuild/protobuf";
import { RoleBindingSchema } from "../../gen/skiff/v1alpha1/rbac_pb.js";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

const run = promisify(execFile);
let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane({
    tokenAuthenticators: [createStaticTokenAuthenticator(new Map([["buf-token-1", { name: "buf-user", groups: ["buf-group"] }]]))],
  });
  // The token's group may read the default namespace.
  await cp.client("RoleBinding").create(
    create(RoleBindingSchema, {
      metadata: { name: "buf-view", namespace: "default" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "view" },
      subjects: [{ kind: "Group", apiGroup: "rbac.authorization.k8s.io", name: "buf-group" }],
    }),
  );
});
afterAll(async () => {
  await cp?.stop();
});

const certArgs = () => ["--cacert", cp.pki.files("ca").cert, "--cert", cp.pki.files("admin").cert, "--key", cp.pki.files("admin").key];

const bufArgs = (method: string, data: unknown, credentials = certArgs()) => [
  "curl", "--schema", ".", "--protocol", "grpc", ...credentials,
  `${cp.server.url}/skiff.v1alpha1.${method}`, "-d", JSON.stringify(data),
];

async function bufCurl(method: string, data: unknown, credentials?: string[]): Promise<any> {
  const { stdout } = await run("npx", ["buf", ...bufArgs(method, data, credentials)], { cwd: process.cwd() });
  return JSON.parse(stdout);
}

describe("buf curl over gRPC", () => {
  it("creates, gets and lists", async () => {
    const created = await bufCurl("PodService/Create", {
      pod: { metadata: { name: "from-buf", labels: { app: "buf" } }, spec: { containers: [{ name: "c", image: "busybox:1" }] } },
    });
    expect(created.pod.metadata.uid).toBeTruthy();
    expect(created.pod.spec.restartPolicy).toBe("Always"); // defaulted by the server
    const got = await bufCurl("PodService/Get", { namespace: "default", name: "from-buf" });
    expect(got.pod.metadata.resourceVersion).toBe(created.pod.metadata.resourceVersion);
    const listed = await bufCurl("PodService/List", { namespace: "default", labelSelector: "app=buf" });
    expect(listed.items.map((p: any) => p.metadata.name)).toEqual(["from-buf"]);
  });

  it("reports errors with gRPC codes", async () => {
    const err = await run("npx", ["buf", ...bufArgs("PodService/Get", { namespace: "default", name: "nope" })]).catch((e) => e);
    expect(err.stderr).toMatch(/not_found|NotFound|not found/i);
  });

  it("watches and sees a change", async () => {
    const child = spawn("npx", ["buf", ...bufArgs("ConfigMapService/Watch", { namespace: "default" })], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    try {
      await expect.poll(() => out.includes("WATCH_EVENT_TYPE_BOOKMARK"), { timeout: 20_000 }).toBe(true);
      await bufCurl("ConfigMapService/Create", { configMap: { metadata: { name: "seen-by-buf" } } });
      await expect.poll(() => /WATCH_EVENT_TYPE_ADDED[\s\S]*seen-by-buf/.test(out), { timeout: 10_000 }).toBe(true);
    } finally {
      child.kill("SIGTERM");
    }
  }, 40_000);
});

describe("buf curl with other credentials", () => {
  it("works with a bearer token from the token file instead of a certificate", async () => {
    const token = ["--cacert", cp.pki.files("ca").cert, "-H", "Authorization: Bearer buf-token-1"];
    const listed = await bufCurl("ConfigMapService/List", { namespace: "default" }, token);
    expect(Array.isArray(listed.items ?? [])).toBe(true);
  });

  it("is refused as unauthenticated with an unknown token, and without any credentials", async () => {
    const bad = await run("npx", ["buf", ...bufArgs("ConfigMapService/List", { namespace: "default" }, ["--cacert", cp.pki.files("ca").cert, "-H", "Authorization: Bearer nope"])]).catch((e) => e);
    expect(bad.stderr).toMatch(/unauthenticated[\s\S]*bearer token rejected/i);
    const none = await run("npx", ["buf", ...bufArgs("ConfigMapService/List", { namespace: "default" }, ["--cacert", cp.pki.files("ca").cert])]).catch((e) => e);
    expect(none.stderr).toMatch(/unauthenticated[\s\S]*no credentials/i);
  });

  it("does not trust a server whose certificate is not signed by the CA it was given", async () => {
    const err = await run("npx", ["buf", ...bufArgs("ConfigMapService/List", { namespace: "default" }, ["--cert", cp.pki.files("admin").cert, "--key", cp.pki.files("admin").key])]).catch((e) => e);
    expect(err.stderr).toMatch(/certificate/i);
  });
});
