// The pull client against a real registry (Debian docker-registry, distribution 2.8), with
// images pushed by skopeo from an OCI layout built from /bin/busybox (test/harness/images.ts).

import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryError } from "../../internal/runtime/registry/errors.ts";
import { MEDIA_TYPES } from "../../internal/runtime/registry/manifest.ts";
import { createMemorySink } from "../../internal/runtime/registry/memory-sink.ts";
import { pullToSink, type PullToSinkOptions } from "../../internal/runtime/registry/pull.ts";
import { pushOciLayout, startRegistry, type RegistryServer } from "../harness/registry.ts";
import { buildBusyboxImage } from "../harness/images.ts";
import { makeTempDir, removeTempDir } from "../harness/tmp.ts";
import { addMultiArchIndex, describeImage, type Descriptor, type LayoutImage } from "./multi-arch.ts";

async function pullError(ref: string, opts: PullToSinkOptions = {}): Promise<RegistryError> {
  try {
    await pullToSink(ref, createMemorySink(), opts);
  } catch (err) {
    if (err instanceof RegistryError) return err;
    throw err;
  }
  throw new Error(`pull ${ref} succeeded`);
}

// One layout (test/harness/images.ts) with two names: "v1", the linux/amd64 busybox image, and
// "multi", an OCI index over it and a stand-in linux/arm64/v8 image.
let workDir: string;
let layoutDir: string;
let layout: { target: Descriptor; amd64: LayoutImage; arm64: LayoutImage };

beforeAll(async () => {
  workDir = makeTempDir("skiff-registry-test-");
  const image = await buildBusyboxImage(workDir, { name: "skiff.test/busybox", tag: "v1" });
  layoutDir = image.layoutDir;
  const multi = addMultiArchIndex(layoutDir, image.manifestDigest, "multi");
  layout = { target: multi.index, amd64: describeImage(layoutDir, image.manifestDigest), arm64: multi.arm64 };
});
afterAll(() => removeTempDir(workDir));

describe("anonymous registry", () => {
  let reg: RegistryServer;
  let dockerListDigest: string;

  beforeAll(async () => {
    reg = await startRegistry();
    await pushOciLayout(layoutDir, reg.url, "team/busybox:v1", undefined, { sourceTag: "multi" });
    await pushOciLayout(layoutDir, reg.url, "team/busybox:amd64-only", undefined, { sourceTag: "v1" });
    ({ digest: dockerListDigest } = await pushOciLayout(layoutDir, reg.host, "team/busybox:docker", undefined, {
      sourceTag: "multi",
      format: "v2s2",
    }));
  });
  afterAll(() => reg?.stop());

  it("pulls an OCI index, resolves linux/amd64, and stores every blob with GC labels", async () => {
    const sink = createMemorySink();
    const res = await pullToSink(`${reg.host}/team/busybox:v1`, sink);

    // skopeo keeps the exact bytes, so the digests are the layout's
    expect(res).toEqual({
      name: `${reg.host}/team/busybox:v1`,
      target: { mediaType: MEDIA_TYPES.ociIndex, digest: layout.target.digest, size: layout.target.size },
      manifest: layout.amd64.manifest,
      config: layout.amd64.config,
    });
    const [base, top] = layout.amd64.layers;
    expect([...sink.blobs.keys()].sort()).toEqual(
      [layout.target.digest, layout.amd64.manifest.digest, layout.amd64.config.digest, base.digest, top.digest].sort(),
    );
    const source = { "containerd.io/distribution.source.127.0.0.1": "team/busybox" };
    expect(sink.blobs.get(layout.target.digest)?.labels).toEqual({
      ...source,
      "containerd.io/gc.ref.content.m.0": layout.arm64.manifest.digest,
      "containerd.io/gc.ref.content.m.1": layout.amd64.manifest.digest,
    });
    expect(sink.blobs.get(layout.amd64.manifest.digest)?.labels).toEqual({
      ...source,
      "containerd.io/gc.ref.content.config": layout.amd64.config.digest,
      "containerd.io/gc.ref.content.l.0": base.digest,
      "containerd.io/gc.ref.content.l.1": top.digest,
    });
    expect(sink.blobs.get(base.digest)?.labels).toEqual(source);
    expect(sink.writes.at(-1)).toBe(layout.target.digest);

    const tar = gunzipSync(sink.blobs.get(base.digest)!.bytes);
    expect(tar.includes(Buffer.from("bin/busybox"))).toBe(true);
    const config = sink.json(res.config.digest) as { architecture: string; os: string };
    expect(config).toMatchObject({ architecture: "amd64", os: "linux" });
  });

  it("pulls a single manifest, by tag and by digest", async () => {
    const byTag = await pullToSink(`${reg.host}/team/busybox:amd64-only`, createMemorySink());
    expect(byTag.target).toEqual(layout.amd64.manifest);
    expect(byTag.manifest).toEqual(layout.amd64.manifest);

    const byDigest = await pullToSink(`${reg.host}/team/busybox@${layout.amd64.manifest.digest}`, createMemorySink());
    expect(byDigest.name).toBe(`${reg.host}/team/busybox@${layout.amd64.manifest.digest}`);
    expect(byDigest.config).toEqual(layout.amd64.config);
  });

  it("pulls a Docker manifest list (skopeo --format v2s2) and the arm64 image when asked", async () => {
    const res = await pullToSink(`${reg.host}/team/busybox:docker`, createMemorySink());
    expect(res.target).toMatchObject({ mediaType: MEDIA_TYPES.dockerManifestList, digest: dockerListDigest });
    expect(res.manifest.mediaType).toBe(MEDIA_TYPES.dockerManifest);
    expect(res.config.mediaType).toBe("application/vnd.docker.container.image.v1+json");
    // conversion rewrites the manifests, not the blobs
    expect(res.config.digest).toBe(layout.amd64.config.digest);

    const arm = await pullToSink(`${reg.host}/team/busybox:v1`, createMemorySink(), {
      platform: { os: "linux", architecture: "arm64" },
    });
    expect(arm.manifest).toEqual(layout.arm64.manifest);
  });

  it("fails NotFound with the registry's message for a missing repository or tag", async () => {
    const missingRepo = await pullError(`${reg.host}/team/nope:v1`);
    expect(missingRepo.reason).toBe("NotFound");
    expect(missingRepo.message).toBe(`pull ${reg.host}/team/nope:v1: manifest unknown: manifest unknown (404)`);

    const missingTag = await pullError(`${reg.host}/team/busybox:v9`);
    expect(missingTag.reason).toBe("NotFound");
    expect(missingTag.errors[0]).toMatchObject({ code: "MANIFEST_UNKNOWN", detail: { Tag: "v9" } });

    const missingDigest = await pullError(`${reg.host}/team/busybox@sha256:${"0".repeat(64)}`);
    expect(missingDigest.reason).toBe("NotFound");
  });
});

describe("registry with Basic auth", () => {
  const creds = { username: "skiff", password: "correct horse" };
  let reg: RegistryServer;

  beforeAll(async () => {
    reg = await startRegistry({ basicAuth: creds });
    await pushOciLayout(layoutDir, reg.url, "private/busybox:v1", creds, { sourceTag: "multi" });
  });
  afterAll(() => reg?.stop());

  it("pulls with the right credentials", async () => {
    const sink = createMemorySink();
    const res = await pullToSink(`${reg.host}/private/busybox:v1`, sink, { auth: creds });
    expect(res.manifest).toEqual(layout.amd64.manifest);
    expect(sink.blobs.size).toBe(5); // index, manifest, config, two layers
  });

  it("fails Unauthorized with the registry's message without credentials or with a wrong password", async () => {
    const anonymous = await pullError(`${reg.host}/private/busybox:v1`);
    expect(anonymous.reason).toBe("Unauthorized");
    expect(anonymous.message).toBe(`pull ${reg.host}/private/busybox:v1: unauthorized: authentication required (401)`);

    const wrong = await pullError(`${reg.host}/private/busybox:v1`, { auth: { ...creds, password: "wrong" } });
    expect(wrong.reason).toBe("Unauthorized");
    expect(wrong.status).toBe(401);
    expect(wrong.message).toBe(`pull ${reg.host}/private/busybox:v1: unauthorized: authentication required (401)`);
  });

  it("refuses a push with a wrong password too (the harness's htpasswd is what guards it)", async () => {
    await expect(
      pushOciLayout(layoutDir, reg.url, "private/other:v1", { ...creds, password: "wrong" }, { sourceTag: "v1" }),
    ).rejects.toThrow(/skopeo copy .* failed: .*(unauthorized|authentication required)/i);
  });
});

describe("registry down", () => {
  it("fails Unreachable", async () => {
    const reg = await startRegistry();
    const host = reg.host;
    await reg.stop();
    const err = await pullError(`${host}/team/busybox:v1`);
    expect(err.reason).toBe("Unreachable");
    expect(err.message).toMatch(new RegExp(`^pull ${host}/team/busybox:v1: cannot reach http://${host}: .*ECONNREFUSED`));
  });
});
