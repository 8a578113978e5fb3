// skiffctl create token: a ServiceAccount token from the apiserver, printed for a job to use.
import { create } from "@bufbuild/protobuf";
import { decodeJwt } from "jose";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { ServiceAccountSchema } from "../../gen/skiff/v1alpha1/service_account_pb.js";
import { startCliTestApi, type CliTestApi } from "./testing.ts";

let api: CliTestApi;
beforeAll(async () => {
  api = await startCliTestApi();
  await api.client("Namespace").create(create(NamespaceSchema, { metadata: { name: "ci" } }));
  await api.client("ServiceAccount").create(create(ServiceAccountSchema, { metadata: { name: "build-bot", namespace: "ci" } }));
});
afterAll(async () => {
  await api?.close();
});

describe("skiffctl create token", () => {
  it("prints a token of the account for the duration and audiences asked, which the apiserver accepts", async () => {
    const r = await api.run(["create", "token", "build-bot", "-n", "ci", "--duration", "2h", "--audience", "vault", "--audience", "https://kubernetes.default.svc"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const token = r.out.trim();
    const claims = decodeJwt(token);
    expect(claims.sub).toBe("system:serviceaccount:ci:build-bot");
    expect(claims.aud).toEqual(["vault", "https://kubernetes.default.svc"]);
    expect(claims.exp! - claims.iat!).toBe(7200);
    expect(await api.server.serviceAccountAuthenticator.authenticate(token)).toMatchObject({ name: "system:serviceaccount:ci:build-bot" });
  });

  it("defaults to one hour for the apiserver, and says in one line what is wrong", async () => {
    const r = await api.run(["create", "token", "build-bot", "-n", "ci"]);
    const claims = decodeJwt(r.out.trim());
    expect(claims.exp! - claims.iat!).toBe(3600);
    expect(claims.aud).toEqual(["https://kubernetes.default.svc"]);

    const short = await api.run(["create", "token", "build-bot", "-n", "ci", "--duration", "5m"]);
    expect(short.code).toBe(1);
    expect(short.err).toBe("Error: token request is invalid: expirationSeconds: must be from 600 (10m) to 172800 (48h), got 300\n");
    const missing = await api.run(["create", "token", "nobody", "-n", "ci"]);
    expect(missing.err).toBe('Error: serviceaccount "nobody" not found in namespace "ci"\n');
    const noName = await api.run(["create", "token"]);
    expect(noName.err).toContain("give exactly one ServiceAccount name");
  });

  it("applies Kubernetes ServiceAccount manifests and pods that use them", async () => {
    const manifest = [
      "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: deployer, namespace: ci}\nautomountServiceAccountToken: false\nimagePullSecrets: [{name: regcred}]",
      "apiVersion: v1\nkind: Pod\nmetadata: {name: job, namespace: ci}\nspec:\n  serviceAccountName: deployer\n  containers: [{name: app, image: busybox}]",
    ].join("\n---\n");
    const dir = await mkdtemp(join(tmpdir(), "skiff-cli-sa-"));
    try {
      await writeFile(join(dir, "sa.yaml"), manifest);
      const r = await api.run(["apply", "-f", join(dir, "sa.yaml")]);
      expect(r.err).toBe("");
      // Applied again: what the admission filled in is no change of the manifest.
      const again = await api.run(["apply", "-f", join(dir, "sa.yaml")]);
      expect(again.err).toBe("");
      expect(again.out).toContain("pod/job unchanged");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const pod = await api.client("Pod").get("ci", "job");
    expect(pod.spec.automountServiceAccountToken).toBe(false);
    expect(pod.spec.imagePullSecrets.map((s: { name: string }) => s.name)).toEqual(["regcred"]);
  });

  it("lists ServiceAccounts like kubectl (get sa)", async () => {
    const r = await api.run(["get", "sa", "-n", "ci"]);
    expect(r.out.split("\n")[0].split(/\s+/)).toEqual(["NAME", "SECRETS", "AGE"]);
    expect(r.out).toMatch(/^build-bot\s+0\s+\S+$/m);
  });
});
