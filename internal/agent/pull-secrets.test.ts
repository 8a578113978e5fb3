import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { SecretSchema, type Secret } from "../../gen/skiff/v1alpha1/config_pb.js";
import type { PullOptions } from "../runtime/runtime.ts";
import { createResourceClient } from "../client/resource-client.ts";
import { credentialsFor, parseDockerSecret, parseKey } from "./pull-secrets.ts";
import { cstatus, startHarness, type Harness } from "./testing.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

function secret(name: string, type: string, data: Record<string, string>): Secret {
  return create(SecretSchema, {
    metadata: { name, namespace: "default" },
    type,
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)])),
  });
}

const dockerConfigJson = (name: string, auths: Record<string, unknown>) =>
  secret(name, "kubernetes.io/dockerconfigjson", { ".dockerconfigjson": JSON.stringify({ auths }) });

describe("docker config keys", () => {
  it("drop the scheme and trailing slashes and unify Docker Hub's names", () => {
    expect(parseKey("https://reg.example:5000/")).toEqual({ host: "reg.example", port: "5000", path: "" });
    expect(parseKey("127.0.0.1:5000")).toEqual({ host: "127.0.0.1", port: "5000", path: "" });
    expect(parseKey("http://Reg.Example/team/app")).toEqual({ host: "reg.example", port: "", path: "team/app" });
    expect(parseKey("https://index.docker.io/v1/")).toEqual({ host: "docker.io", port: "", path: "" });
    expect(parseKey("registry-1.docker.io")).toEqual({ host: "docker.io", port: "", path: "" });
  });

  it("match the image's host, port and repository path", () => {
    const entries = parseDockerSecret(dockerConfigJson("s", {
      "http://127.0.0.1:5000": { username: "a", password: "1" },
      "127.0.0.1": { username: "no-port", password: "2" },
      "reg.example/team": { username: "team", password: "3" },
      "reg.example": { username: "reg", password: "4" },
      "*.corp.example": { username: "wild", password: "5" },
      "https://index.docker.io/v1/": { auth: b64("hub:6") },
    }))!;
    const users = (image: string) => credentialsFor(entries, image).map((a) => a.username);
    expect(users("127.0.0.1:5000/busybox:v1")).toEqual(["a"]);
    expect(users("127.0.0.1:5001/busybox:v1")).toEqual([]);
    expect(users("127.0.0.1/busybox")).toEqual(["no-port"]);
    expect(users("reg.example/team/app:1")).toEqual(["team", "reg"]); // most specific first
    expect(users("reg.example/teamwork/app")).toEqual(["reg"]);
    expect(users("a.corp.example/x")).toEqual(["wild"]);
    expect(users("a.b.corp.example/x")).toEqual([]);
    expect(users("busybox")).toEqual(["hub"]);
    expect(users("docker.io/library/busybox:1.36")).toEqual(["hub"]);
    expect(users("Not A Reference")).toEqual([]);
  });
});

describe("pull secrets", () => {
  it("read dockerconfigjson (username/password or auth) and dockercfg; ignore other types", () => {
    const json = parseDockerSecret(dockerConfigJson("s", { "r:1": { auth: b64("u:p:w") }, "r:2": { username: "x", password: "y" }, "r:3": { email: "e@x" } }))!;
    expect(json.map((e) => [e.key, e.auth])).toEqual([
      ["r:1", { username: "u", password: "p:w" }],
      ["r:2", { username: "x", password: "y" }],
    ]);
    const cfg = parseDockerSecret(secret("c", "kubernetes.io/dockercfg", { ".dockercfg": JSON.stringify({ "https://r:1": { auth: b64("c:d") } }) }))!;
    expect(cfg.map((e) => e.auth)).toEqual([{ username: "c", password: "d" }]);
    expect(parseDockerSecret(secret("o", "Opaque", { ".dockerconfigjson": "{}" }))).toBeUndefined();
    expect(parseDockerSecret(secret("e", "kubernetes.io/dockerconfigjson", { ".dockerconfigjson": "{}" }))).toEqual([]);
  });

  it("name the secret when its content does not parse", () => {
    expect(() => parseDockerSecret(secret("bad", "kubernetes.io/dockerconfigjson", { ".dockerconfigjson": "{nope" }))).toThrow(/^secret "bad": \.dockerconfigjson is not valid JSON/);
    expect(() => parseDockerSecret(secret("none", "kubernetes.io/dockerconfigjson", {}))).toThrow('secret "none" of type kubernetes.io/dockerconfigjson has no .dockerconfigjson key');
    expect(() => parseDockerSecret(dockerConfigJson("a", { r: { auth: b64("nocolon") } }))).toThrow(/registry "r": "auth" is not base64 of "username:password"/);
  });
});

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Records every pull's options; fails like a registry when the credentials are not user/pass. */
function registryWithAuth(harness: Harness): { ref: string; opts: PullOptions }[] {
  const pulls: { ref: string; opts: PullOptions }[] = [];
  const orig = harness.runtime.pullImage;
  harness.runtime.pullImage = async (ref, opts = {}) => {
    pulls.push({ ref, opts });
    if (ref.startsWith("127.0.0.1:5000/") && (opts.auth?.username !== "user" || opts.auth.password !== "pass")) {
      throw Object.assign(new Error(`pull ${ref}: unauthorized: authentication required (401)`), { reason: "Unauthorized" });
    }
    return orig(ref, opts);
  };
  return pulls;
}

describe("the agent's pulls", () => {
  it("use the pod's pull secrets, trying each matching credential; insecure registries are passed on", async () => {
    h = await startHarness({ insecureRegistries: ["reg.lan:5000"] });
    const pulls = registryWithAuth(h);
    const secrets = createResourceClient<Secret>(h.transport, "Secret");
    await secrets.create(dockerConfigJson("wrong", { "127.0.0.1:5000": { username: "user", password: "nope" } }));
    await secrets.create(dockerConfigJson("right", { "http://127.0.0.1:5000/": { auth: b64("user:pass") } }));
    await h.createPod("auth", {
      imagePullSecrets: [{ name: "wrong" }, { name: "right" }] as any,
      containers: [{ name: "app", image: "127.0.0.1:5000/busybox:v1" }],
    });
    await h.waitForPod("auth", "Running", (p) => p.status?.phase === "Running");
    expect(pulls.map((p) => p.opts.auth?.password)).toEqual(["nope", "pass"]);
    expect(pulls[0].opts.insecureRegistries).toEqual(["reg.lan:5000"]);
  });

  it("pull anonymously when a secret is missing, and fail with the registry's message", async () => {
    h = await startHarness();
    const pulls = registryWithAuth(h);
    await h.createPod("missing", { imagePullSecrets: [{ name: "gone" }] as any, containers: [{ name: "app", image: "127.0.0.1:5000/busybox:v1" }] });
    const p = await h.waitForPod("missing", "ErrImagePull", (p) => cstatus(p)?.state?.waiting?.reason === "ErrImagePull");
    expect(cstatus(p)!.state!.waiting!.message).toBe("pull 127.0.0.1:5000/busybox:v1: unauthorized: authentication required (401)");
    expect(pulls[0].opts.auth).toBeUndefined();
  });

  it("fail the pull with a clear message when a secret cannot be read", async () => {
    h = await startHarness();
    const pulls = registryWithAuth(h);
    await createResourceClient<Secret>(h.transport, "Secret").create(secret("broken", "kubernetes.io/dockerconfigjson", { ".dockerconfigjson": "not json" }));
    await h.createPod("broken", { imagePullSecrets: [{ name: "broken" }] as any, containers: [{ name: "app", image: "127.0.0.1:5000/busybox:v1" }] });
    const p = await h.waitForPod("broken", "ErrImagePull", (p) => cstatus(p)?.state?.waiting?.reason === "ErrImagePull");
    expect(cstatus(p)!.state!.waiting!.message).toMatch(/^secret "broken": \.dockerconfigjson is not valid JSON/);
    expect(pulls).toEqual([]);
  });
});
