import { create } from "@bufbuild/protobuf";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { PodSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createTokenProjector, SERVICE_ACCOUNT_MOUNT_PATH } from "./serviceaccount-token.ts";
import { createTokenIssuer, generateSigningKeyPem, signingKeyFromPem } from "../auth/serviceaccount/index.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const pod = (automount?: boolean) =>
  create(PodSchema, { metadata: { name: "web", namespace: "shop", uid: "uid-1" }, spec: { serviceAccountName: "default", automountServiceAccountToken: automount, containers: [{ name: "app", image: "x" }] } });

function setUp() {
  const rootDir = mkdtempSync(join(tmpdir(), "skiff-sa-token-"));
  dirs.push(rootDir);
  let clock = 1_000_000;
  const issued: string[] = [];
  const projector = createTokenProjector({
    rootDir,
    clusterCa: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
    now: () => clock,
    async requestToken(_pod, seconds) {
      issued.push(`token-${issued.length + 1}`);
      return { token: issued.at(-1)!, expiresAt: new Date(clock + seconds * 1000) };
    },
  });
  return { rootDir, projector, issued, advance: (ms: number) => (clock += ms) };
}

describe("ServiceAccount token projection", () => {
  it("writes token, ca.crt and namespace behind a ..data symlink and mounts them read-only", async () => {
    const { projector } = setUp();
    const mount = await projector.ensure(pod());
    expect(mount).toMatchObject({ containerPath: SERVICE_ACCOUNT_MOUNT_PATH, readOnly: true });
    const dir = mount!.hostPath;
    expect(readFileSync(join(dir, "token"), "utf8")).toBe("token-1");
    expect(readFileSync(join(dir, "namespace"), "utf8")).toBe("shop");
    expect(readFileSync(join(dir, "ca.crt"), "utf8")).toContain("BEGIN CERTIFICATE");
    expect(readlinkSync(join(dir, "token"))).toBe(join("..data", "token"));
    expect(readlinkSync(join(dir, "..data"))).toMatch(/^\.\.\d{4}_/);
  });

  it("asks for a new token only after 80 % of its life, swapping every file at once and keeping only the previous version", async () => {
    const { projector, issued, advance } = setUp();
    const dir = (await projector.ensure(pod()))!.hostPath;
    const first = readlinkSync(join(dir, "..data"));
    advance(0.79 * 3600_000);
    await projector.ensure(pod());
    expect(issued).toEqual(["token-1"]);
    advance(0.02 * 3600_000);
    await projector.ensure(pod());
    expect(issued).toEqual(["token-1", "token-2"]);
    expect(readFileSync(join(dir, "token"), "utf8")).toBe("token-2");
    expect(readlinkSync(join(dir, "..data"))).not.toBe(first);
    // The new version and the one before it (kept until the next swap for readers on their way through it).
    expect(readdirSync(dir).filter((e) => e.startsWith("..") && e !== "..data").sort()).toEqual([first, readlinkSync(join(dir, "..data"))].sort());
    // After the agent forgets the pod (it was deleted), a pod with the same uid starts over.
    projector.forget("uid-1");
    await projector.ensure(pod());
    expect(issued).toHaveLength(3);
  });

  it("keeps a fresh token found on disk after an agent restart, and replaces one past 80 % of its life", async () => {
    const { rootDir } = setUp();
    let clock = Date.parse("2026-01-01T00:00:00Z");
    const issued: string[] = [];
    const jwt = async (iatMs: number) => {
      const key = signingKeyFromPem(generateSigningKeyPem().privateKey);
      return createTokenIssuer({ key, now: () => iatMs }).issue({ namespace: "shop", serviceAccount: { name: "default", uid: "sa" }, audiences: ["a"], expirationSeconds: 3600 });
    };
    const restarted = () =>
      createTokenProjector({
        rootDir,
        now: () => clock,
        async requestToken() {
          const t = await jwt(clock);
          issued.push(t.token);
          return t;
        },
      });
    const dir = (await restarted().ensure(pod()))!.hostPath;
    expect(issued).toHaveLength(1);
    clock += 0.5 * 3600_000;
    await restarted().ensure(pod());
    expect(issued).toHaveLength(1);
    clock += 0.31 * 3600_000;
    await restarted().ensure(pod());
    expect(issued).toHaveLength(2);
    expect(readFileSync(join(dir, "token"), "utf8")).toBe(issued[1]);
  });

  it("after a restart, reads back the tokens of pods whose directories were there, and asks anew for pods that are new", async () => {
    const { rootDir } = setUp();
    const issued: string[] = [];
    const restarted = () =>
      createTokenProjector({
        rootDir,
        async requestToken() {
          issued.push(`token-${issued.length + 1}`);
          return { token: issued.at(-1)!, expiresAt: new Date(Date.now() + 3600_000) };
        },
      });
    const first = restarted();
    first.foundOnDisk([]);
    await first.ensure(pod());
    expect(issued).toHaveLength(1);
    // What an earlier agent left: a fresh token (a JWT: its iat and exp say when it is due).
    const jwt = await createTokenIssuer({ key: signingKeyFromPem(generateSigningKeyPem().privateKey) }).issue({
      namespace: "shop",
      serviceAccount: { name: "default", uid: "sa" },
      audiences: ["a"],
      expirationSeconds: 3600,
    });
    writeFileSync(join(rootDir, "pods", "uid-1", "volumes", "kube-api-access", "..data", "token"), jwt.token);
    const second = restarted();
    second.foundOnDisk(["uid-1"]);
    await second.ensure(pod());
    expect(issued).toHaveLength(1);
  });

  it("mounts nothing and asks for no token with automountServiceAccountToken: false", async () => {
    const { projector, issued, rootDir } = setUp();
    expect(await projector.ensure(pod(false))).toBeUndefined();
    expect(issued).toEqual([]);
    expect(existsSync(join(rootDir, "pods", "uid-1"))).toBe(false);
  });
});
