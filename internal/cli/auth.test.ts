// skiffctl auth can-i / whoami against the apiserver's real authorizer (RBAC on its watch
// caches). Until authentication is wired in, the caller's identity is put on the context by a
// small front server, as the request pipeline will.
import { connectNodeAdapter } from "@connectrpc/connect-node";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthorizationService } from "../../gen/skiff/v1alpha1/authorization_service_pb.js";
import { createAuthorizationService } from "../auth/review/service.ts";
import { startAuthTestApi, user, type AuthTestApi } from "../auth/testing.ts";
import { userKey, type UserInfo } from "../auth/types.ts";
import { parseReviewResource } from "./commands/auth.ts";
import { runSkiffctl } from "./main.ts";

let api: AuthTestApi;
const servers: http2.Http2Server[] = [];
const dir = mkdtempSync(join(tmpdir(), "skiffctl-auth-"));
beforeAll(async () => {
  api = await startAuthTestApi();
  await api.namespace("team-a");
  await api.put("RoleBinding", {
    metadata: { name: "jane-view", namespace: "team-a" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "view" },
    subjects: [{ kind: "User", apiGroup: "rbac.authorization.k8s.io", name: "jane" }],
  });
});
afterAll(async () => {
  for (const s of servers) s.close();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A server answering AuthorizationService as `who`. */
async function serveAs(who: UserInfo): Promise<string> {
  const handler = connectNodeAdapter({
    routes: (r) => r.service(AuthorizationService, createAuthorizationService(api.server.authorization.authorizer) as never),
    interceptors: [
      (next) => (req) => {
        req.contextValues.set(userKey, who);
        return next(req);
      },
    ],
  });
  const s = http2.createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

async function skiffctl(server: string, args: string[]) {
  let out = "";
  let err = "";
  const env = { SKIFF_SERVER: server, SKIFF_CONFIG: join(dir, "config.yaml") };
  const code = await runSkiffctl(args, { out: (t) => void (out += t), err: (t) => void (err += t), readStdin: async () => "", env, signal: new AbortController().signal });
  return { code, out, err };
}

describe("skiffctl auth can-i", () => {
  it("answers yes (exit 0) or no with the reason (exit 1) for the caller", async () => {
    const jane = await serveAs(user("jane"));
    expect(await skiffctl(jane, ["auth", "can-i", "list", "pods", "-n", "team-a"])).toEqual({ code: 0, out: "yes\n", err: "" });
    expect(await skiffctl(jane, ["auth", "can-i", "get", "pods/log", "web", "-n", "team-a"])).toMatchObject({ code: 0, out: "yes\n" });
    expect(await skiffctl(jane, ["auth", "can-i", "create", "deploy", "-n", "team-a"])).toEqual({
      code: 1,
      out: 'no - User "jane" cannot create resource "deployments" in API group "apps" in the namespace "team-a"\n',
      err: "",
    });
    expect(await skiffctl(jane, ["auth", "can-i", "list", "secrets", "-n", "team-a", "-q"])).toEqual({ code: 1, out: "", err: "" });
    expect((await skiffctl(jane, ["auth", "can-i", "list", "pods", "-A"])).code).toBe(1);
    expect((await skiffctl(jane, ["auth", "can-i", "get", "/metrics"])).out).toBe('no - User "jane" cannot get path "/metrics"\n');
  });

  it("checks another user with --as only for a caller allowed to review others", async () => {
    const admin = await serveAs(user("admin", "system:masters"));
    expect(await skiffctl(admin, ["auth", "can-i", "list", "pods", "-n", "team-a", "--as", "jane"])).toMatchObject({ code: 0, out: "yes\n" });
    expect(await skiffctl(admin, ["auth", "can-i", "delete", "nodes", "--as", "bob", "--as-group", "system:masters"])).toMatchObject({ code: 0, out: "yes\n" });
    expect((await skiffctl(admin, ["auth", "can-i", "list", "secrets", "-n", "team-a", "--as", "jane"])).code).toBe(1);
    const jane = await serveAs(user("jane"));
    const r = await skiffctl(jane, ["auth", "can-i", "list", "pods", "--as", "admin"]);
    expect(r.code).toBe(1);
    expect(r.err).toBe('Error: subjectaccessreviews is forbidden: User "jane" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope\n');
  });

  it("refuses what it cannot ask about, naming what to write", async () => {
    const jane = await serveAs(user("jane"));
    expect(await skiffctl(jane, ["auth", "can-i", "frobnicate", "pods"])).toMatchObject({ code: 1, err: expect.stringMatching(/^Error: unknown verb "frobnicate": use one of get, list/) });
    expect(await skiffctl(jane, ["auth", "can-i", "get"])).toMatchObject({ code: 1, err: expect.stringMatching(/^Error: say what to check: skiffctl auth can-i VERB RESOURCE/) });
    expect(await skiffctl(jane, ["auth", "can-i", "get", "widgets", "-n", "team-a"])).toEqual({
      code: 1,
      out: 'no - User "jane" cannot get resource "widgets" in API group "" in the namespace "team-a"\n',
      err: 'Warning: the server doesn\'t have a resource type "widgets"\n',
    });
  });

  it("finds resources through the kind registry", () => {
    expect(parseReviewResource("deploy")).toMatchObject({ resource: "deployments", group: "apps", subresource: "" });
    expect(parseReviewResource("leases.coordination.k8s.io")).toMatchObject({ resource: "leases", group: "coordination.k8s.io", unknown: false });
    expect(parseReviewResource("pods/status")).toMatchObject({ resource: "pods", group: "", subresource: "status" });
    expect(parseReviewResource("clusterroles")).toMatchObject({ resource: "clusterroles", group: "rbac.authorization.k8s.io", namespaced: false });
    expect(parseReviewResource("cronjobs.batch")).toMatchObject({ resource: "cronjobs", group: "batch", unknown: true });
  });
});

describe("skiffctl auth whoami", () => {
  it("prints the caller's name and groups", async () => {
    const url = await serveAs({ name: "system:node:n1", groups: ["system:nodes", "system:authenticated"], authenticatedBy: "x509" });
    expect(await skiffctl(url, ["auth", "whoami"])).toEqual({
      code: 0,
      out: "ATTRIBUTE          VALUE\nUsername           system:node:n1\nGroups             [system:nodes system:authenticated]\nAuthenticated by   x509\n",
      err: "",
    });
    expect(JSON.parse((await skiffctl(url, ["auth", "whoami", "-o", "json"])).out)).toEqual({
      username: "system:node:n1",
      uid: "",
      groups: ["system:nodes", "system:authenticated"],
      authenticatedBy: "x509",
    });
  });

  it("says so when the server knows no caller", async () => {
    const r = await skiffctl(api.server.url, ["auth", "whoami"]);
    expect(r).toEqual({ code: 1, out: "", err: "Error: no credentials: present a client certificate or a bearer token\n" });
  });
});
