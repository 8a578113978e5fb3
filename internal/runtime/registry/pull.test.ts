import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryError } from "./errors.ts";
import { startFakeRegistry, type FakeRegistry, type FakeRegistryOptions } from "./fake-registry.ts";
import { MEDIA_TYPES } from "./manifest.ts";
import { createMemorySink } from "./memory-sink.ts";
import { pullToSink, type PullToSinkOptions } from "./pull.ts";

const servers: FakeRegistry[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function fake(opts: FakeRegistryOptions = {}): Promise<FakeRegistry> {
  const reg = await startFakeRegistry(opts);
  servers.push(reg);
  return reg;
}

async function pullError(ref: string, opts: PullToSinkOptions = {}, sink = createMemorySink()): Promise<RegistryError> {
  try {
    await pullToSink(ref, sink, opts);
  } catch (err) {
    if (err instanceof RegistryError) return err;
    throw err;
  }
  throw new Error(`pull ${ref} succeeded`);
}

const AMD64 = { os: "linux", architecture: "amd64" };
const ARM64 = { os: "linux", architecture: "arm64", variant: "v8" };

describe("pullToSink", () => {
  it("pulls a single-platform OCI image anonymously, with GC labels", async () => {
    const reg = await fake();
    const img = reg.addImage("team/app", "v1", { layers: 3 });
    const sink = createMemorySink();
    const res = await pullToSink(`${reg.host}/team/app:v1`, sink);

    expect(res).toEqual({ name: `${reg.host}/team/app:v1`, target: img.manifest, manifest: img.manifest, config: img.config });
    expect([...sink.blobs.keys()].sort()).toEqual([img.manifest, img.config, ...img.layers].map((d) => d.digest).sort());
    // children first, the manifest (which references them) last
    expect(sink.writes.at(-1)).toBe(img.manifest.digest);
    expect(sink.blobs.get(img.manifest.digest)?.labels).toEqual({
      "containerd.io/distribution.source.127.0.0.1": "team/app",
      "containerd.io/gc.ref.content.config": img.config.digest,
      "containerd.io/gc.ref.content.l.0": img.layers[0].digest,
      "containerd.io/gc.ref.content.l.1": img.layers[1].digest,
      "containerd.io/gc.ref.content.l.2": img.layers[2].digest,
    });
    expect(sink.blobs.get(img.layers[0].digest)?.labels).toEqual({ "containerd.io/distribution.source.127.0.0.1": "team/app" });
    expect(sink.blobs.get(img.layers[0].digest)?.desc).toEqual(img.layers[0]);
    expect(reg.requests.every((r) => r.authorization === undefined)).toBe(true);
  });

  it("resolves a Docker manifest list to linux/amd64 and fetches nothing of the other platforms", async () => {
    const reg = await fake();
    const { index, images } = reg.addIndex("multi", "latest", [ARM64, AMD64], { docker: true });
    const sink = createMemorySink();
    const res = await pullToSink(`${reg.host}/multi`, sink);

    expect(res.target).toEqual(index);
    expect(res.target.mediaType).toBe(MEDIA_TYPES.dockerManifestList);
    expect(res.manifest).toEqual(images[1].manifest);
    expect(res.config).toEqual(images[1].config);
    expect(sink.blobs.get(index.digest)?.labels).toMatchObject({
      "containerd.io/gc.ref.content.m.0": images[0].manifest.digest,
      "containerd.io/gc.ref.content.m.1": images[1].manifest.digest,
    });
    expect(sink.writes.at(-1)).toBe(index.digest);
    const armDigests = [images[0].manifest, images[0].config, ...images[0].layers].map((d) => d.digest);
    expect(reg.requests.filter((r) => armDigests.some((d) => r.path.includes(d)))).toEqual([]);
    expect(armDigests.some((d) => sink.blobs.has(d))).toBe(false);
  });

  it("picks another platform from an OCI index when asked, and says what an index lacks", async () => {
    const reg = await fake();
    const { images } = reg.addIndex("multi", "v2", [AMD64, ARM64]);
    const res = await pullToSink(`${reg.host}/multi:v2`, createMemorySink(), { platform: { os: "linux", architecture: "arm64" } });
    expect(res.manifest).toEqual(images[1].manifest);

    const err = await pullError(`${reg.host}/multi:v2`, { platform: { os: "linux", architecture: "s390x" } });
    expect(err.reason).toBe("NotFound");
    expect(err.message).toMatch(/no manifest for platform linux\/s390x \(index has linux\/amd64, linux\/arm64\/v8\)/);
  });

  it("follows an index of indexes, labelling each level", async () => {
    const reg = await fake();
    const { index: inner, images } = reg.addIndex("nested", "inner", [AMD64]);
    const outer = reg.putManifest(
      "nested",
      "outer",
      { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [{ ...inner, platform: AMD64 }] },
      MEDIA_TYPES.ociIndex,
    );
    const sink = createMemorySink();
    const res = await pullToSink(`${reg.host}/nested:outer`, sink);
    expect(res.target).toEqual(outer);
    expect(res.manifest).toEqual(images[0].manifest);
    expect(sink.blobs.get(outer.digest)?.labels["containerd.io/gc.ref.content.m.0"]).toBe(inner.digest);
    expect(sink.blobs.get(inner.digest)?.labels["containerd.io/gc.ref.content.m.0"]).toBe(images[0].manifest.digest);
    expect(sink.writes.slice(-3)).toEqual([images[0].manifest.digest, inner.digest, outer.digest]);
  });

  it("pulls by digest and verifies the manifest against it", async () => {
    const reg = await fake();
    const img = reg.addImage("app", "v1");
    const res = await pullToSink(`${reg.host}/app@${img.manifest.digest}`, createMemorySink());
    expect(res.name).toBe(`${reg.host}/app@${img.manifest.digest}`);
    expect(res.target).toEqual(img.manifest);

    reg.corrupt(img.manifest.digest);
    const err = await pullError(`${reg.host}/app@${img.manifest.digest}`);
    expect(err.reason).toBe("DigestMismatch");
    expect(err.message).toContain(`want ${img.manifest.digest}`);
  });

  it("detects a manifest whose bytes differ from Docker-Content-Digest", async () => {
    const reg = await fake();
    const img = reg.addImage("app", "v1");
    reg.corrupt(img.manifest.digest);
    const err = await pullError(`${reg.host}/app:v1`);
    expect(err.reason).toBe("DigestMismatch");
  });

  it("detects a corrupted layer while streaming; the sink never stores it", async () => {
    const reg = await fake();
    const img = reg.addImage("app", "v1", { layers: 2 });
    reg.corrupt(img.layers[1].digest);
    const sink = createMemorySink();
    const err = await pullError(`${reg.host}/app:v1`, {}, sink);
    expect(err.reason).toBe("DigestMismatch");
    expect(err.message).toContain(`pull ${reg.host}/app:v1: blob ${img.layers[1].digest}: digest mismatch`);
    expect(sink.blobs.has(img.layers[1].digest)).toBe(false);
    expect(sink.blobs.has(img.manifest.digest)).toBe(false);
  });

  it("surfaces the registry's 404 message", async () => {
    const reg = await fake();
    const err = await pullError(`${reg.host}/nope:v1`);
    expect(err.reason).toBe("NotFound");
    expect(err.status).toBe(404);
    expect(err.message).toBe(`pull ${reg.host}/nope:v1: manifest unknown: manifest unknown (404)`);
    expect(err.errors).toEqual([{ code: "MANIFEST_UNKNOWN", message: "manifest unknown", detail: null }]);
  });

  it("skips blobs the sink already has", async () => {
    const reg = await fake();
    const img = reg.addImage("app", "v1", { layers: 2 });
    const sink = createMemorySink();
    await pullToSink(`${reg.host}/app:v1`, sink);
    reg.requests.length = 0;
    await pullToSink(`${reg.host}/app:v1`, sink);
    expect(reg.requests.map((r) => r.path)).toEqual([`/v2/app/manifests/v1`]);
    expect(sink.blobs.size).toBe(4);
    void img;
  });

  describe("Basic auth", () => {
    const auth = { username: "alice", password: "s3cret" };

    it("answers the Basic challenge with the credentials", async () => {
      const reg = await fake({ auth: { kind: "basic", ...auth } });
      const img = reg.addImage("private/app", "v1");
      const res = await pullToSink(`${reg.host}/private/app:v1`, createMemorySink(), { auth });
      expect(res.config).toEqual(img.config);
      const basic = `Basic ${Buffer.from("alice:s3cret").toString("base64")}`;
      // one 401 to learn the scheme, then the credentials on every request
      expect(reg.requests[0].authorization).toBeUndefined();
      expect(reg.requests.slice(1).every((r) => r.authorization === basic)).toBe(true);
      expect(reg.requests.length).toBe(2 + 1 + img.layers.length);
    });

    it("without credentials fails Unauthorized with the registry's message", async () => {
      const reg = await fake({ auth: { kind: "basic", ...auth } });
      reg.addImage("private/app", "v1");
      const err = await pullError(`${reg.host}/private/app:v1`);
      expect(err.reason).toBe("Unauthorized");
      expect(err.message).toBe(`pull ${reg.host}/private/app:v1: unauthorized: authentication required (401)`);
    });

    it("with a wrong password fails Unauthorized", async () => {
      const reg = await fake({ auth: { kind: "basic", ...auth } });
      reg.addImage("private/app", "v1");
      const err = await pullError(`${reg.host}/private/app:v1`, { auth: { username: "alice", password: "nope" } });
      expect(err.reason).toBe("Unauthorized");
      expect(err.message).toContain("unauthorized: authentication required (401)");
    });
  });

  describe("Bearer token flow", () => {
    it("gets an anonymous token with service and scope, and reuses it", async () => {
      const reg = await fake({ auth: { kind: "bearer" } });
      reg.addImage("library/busybox", "latest", { layers: 2 });
      await pullToSink(`${reg.host}/library/busybox`, createMemorySink());
      expect(reg.tokensIssued).toBe(1);
      const tokenReq = reg.requests.find((r) => r.path.startsWith("/token"));
      const params = new URL(`http://x${tokenReq?.path}`).searchParams;
      expect(params.get("service")).toBe("fake-registry");
      expect(params.getAll("scope")).toEqual(["repository:library/busybox:pull"]);
      expect(tokenReq?.authorization).toBeUndefined();
      const v2 = reg.requests.filter((r) => r.path.startsWith("/v2/"));
      expect(v2.slice(1).every((r) => r.authorization === "Bearer tok-1")).toBe(true);
    });

    it("sends Basic credentials to the realm when given", async () => {
      const reg = await fake({ auth: { kind: "bearer", username: "bob", password: "pw" } });
      const img = reg.addImage("app", "v1");
      const res = await pullToSink(`${reg.host}/app:v1`, createMemorySink(), { auth: { username: "bob", password: "pw" } });
      expect(res.config).toEqual(img.config);
      const tokenReq = reg.requests.find((r) => r.path.startsWith("/token"));
      expect(tokenReq?.authorization).toBe(`Basic ${Buffer.from("bob:pw").toString("base64")}`);
    });

    it("fails Unauthorized with the token server's message on bad credentials", async () => {
      const reg = await fake({ auth: { kind: "bearer", username: "bob", password: "pw" } });
      reg.addImage("app", "v1");
      const err = await pullError(`${reg.host}/app:v1`, { auth: { username: "bob", password: "wrong" } });
      expect(err.reason).toBe("Unauthorized");
      expect(err.message).toBe(`pull ${reg.host}/app:v1: token from http://${reg.host}/token: incorrect username or password (401)`);
    });
  });

  describe("blob redirects", () => {
    it("follows a same-origin redirect", async () => {
      const reg = await fake({ blobRedirect: "same-origin" });
      const img = reg.addImage("app", "v1");
      const sink = createMemorySink();
      await pullToSink(`${reg.host}/app:v1`, sink);
      expect(sink.blobs.has(img.layers[0].digest)).toBe(true);
      expect(reg.requests.some((r) => r.path.startsWith("/_store/"))).toBe(true);
    });

    it("follows a redirect to another origin without sending it the registry's token", async () => {
      const reg = await fake({ blobRedirect: "cross-origin", auth: { kind: "bearer" } });
      const img = reg.addImage("app", "v1", { layers: 2 });
      const sink = createMemorySink();
      await pullToSink(`${reg.host}/app:v1`, sink);
      expect(sink.blobs.has(img.layers[1].digest)).toBe(true);
      const store = reg.requests.filter((r) => r.server === "store");
      expect(store.length).toBe(3); // two layers and the config
      expect(store.every((r) => r.authorization === undefined)).toBe(true);
    });

    it("verifies redirected blobs too", async () => {
      const reg = await fake({ blobRedirect: "cross-origin" });
      const img = reg.addImage("app", "v1");
      reg.corrupt(img.config.digest);
      expect((await pullError(`${reg.host}/app:v1`)).reason).toBe("DigestMismatch");
    });
  });

  it("rejects bad manifests and schema 1", async () => {
    const reg = await fake();
    reg.putManifest("app", "garbage", "{not json", MEDIA_TYPES.ociManifest);
    reg.putManifest("app", "old", { schemaVersion: 1, name: "app", tag: "old", fsLayers: [] }, MEDIA_TYPES.dockerManifest);
    reg.putManifest("app", "nolayers", { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { mediaType: "x", digest: "sha256:1", size: 1 } }, MEDIA_TYPES.ociManifest);
    expect(await pullError(`${reg.host}/app:garbage`)).toMatchObject({ reason: "BadManifest", message: expect.stringMatching(/not valid JSON/) });
    expect(await pullError(`${reg.host}/app:old`)).toMatchObject({ reason: "BadManifest", message: expect.stringMatching(/schema 1/) });
    expect(await pullError(`${reg.host}/app:nolayers`)).toMatchObject({ reason: "BadManifest", message: expect.stringMatching(/bad digest/) });
  });

  it("reports an unreachable registry", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    const err = await pullError(`127.0.0.1:${port}/app:v1`);
    expect(err.reason).toBe("Unreachable");
    expect(err.message).toContain(`pull 127.0.0.1:${port}/app:v1: cannot reach http://127.0.0.1:${port}: connect ECONNREFUSED`);
  });

  it("reports an invalid reference", async () => {
    const err = await pullError("Busybox:latest");
    expect(err.reason).toBe("InvalidReference");
    expect(err.message).toMatch(/^pull Busybox:latest: invalid image reference "Busybox:latest": .*lowercase/);
  });

  it("stops when the signal aborts", async () => {
    const reg = await fake();
    reg.addImage("app", "v1");
    const ac = new AbortController();
    ac.abort(new Error("stop now"));
    await expect(pullToSink(`${reg.host}/app:v1`, createMemorySink(), { signal: ac.signal })).rejects.toThrow("stop now");
  });

  it("lets a sink stop reading early without hanging", async () => {
    const reg = await fake();
    const img = reg.addImage("app", "v1", { layers: 1 });
    const inner = createMemorySink();
    const sink = {
      has: inner.has,
      async write(desc: Parameters<typeof inner.write>[0], body: AsyncIterable<Uint8Array>, labels?: Record<string, string>) {
        if (desc.digest === img.layers[0].digest) {
          for await (const _chunk of body) break; // e.g. found it already committed
          return;
        }
        await inner.write(desc, body, labels);
      },
    };
    const res = await pullToSink(`${reg.host}/app:v1`, sink);
    expect(res.manifest).toEqual(img.manifest);
  });
});
