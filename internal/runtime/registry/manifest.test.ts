import { describe, expect, it } from "vitest";
import { childLabels, GC_LABELS, MEDIA_TYPES, parseManifest, selectPlatform, type PlatformDescriptor } from "./manifest.ts";

const d = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const bytes = (v: unknown) => Buffer.from(JSON.stringify(v));

describe("parseManifest", () => {
  it("takes the media type from Content-Type, else the body, else the shape", () => {
    const manifest = { schemaVersion: 2, config: { mediaType: "c", digest: d(1), size: 1 }, layers: [] };
    expect(parseManifest(bytes(manifest), `${MEDIA_TYPES.dockerManifest}; charset=utf-8`, "m").mediaType).toBe(MEDIA_TYPES.dockerManifest);
    expect(parseManifest(bytes({ ...manifest, mediaType: MEDIA_TYPES.dockerManifest }), "application/json", "m").mediaType).toBe(
      MEDIA_TYPES.dockerManifest,
    );
    expect(parseManifest(bytes(manifest), undefined, "m").mediaType).toBe(MEDIA_TYPES.ociManifest);
    expect(parseManifest(bytes({ schemaVersion: 2, manifests: [] }), undefined, "m")).toEqual({
      kind: "index",
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: [],
    });
  });

  it("rejects contradictions and broken descriptors", () => {
    expect(() => parseManifest(bytes({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] }), MEDIA_TYPES.dockerManifest, "m")).toThrow(
      /differs/,
    );
    expect(() => parseManifest(bytes({ schemaVersion: 2, manifests: [{ mediaType: "x", digest: d(1), size: -1 }] }), undefined, "m")).toThrow(
      /manifests\[0\] has a bad size/,
    );
    expect(() => parseManifest(bytes({ schemaVersion: 3, manifests: [] }), undefined, "m")).toThrow(/schemaVersion 3/);
    expect(() => parseManifest(bytes({ hello: 1 }), undefined, "m")).toThrow(/unknown manifest/);
  });
});

describe("selectPlatform", () => {
  const entry = (n: number, architecture: string, variant?: string): PlatformDescriptor => ({
    mediaType: MEDIA_TYPES.ociManifest,
    digest: d(n),
    size: 1,
    platform: { os: "linux", architecture, ...(variant ? { variant } : {}) },
  });
  const attestation: PlatformDescriptor = { mediaType: MEDIA_TYPES.ociManifest, digest: d(9), size: 1, platform: { os: "unknown", architecture: "unknown" } };

  it("matches os/architecture, normalizes aliases and prefers the exact variant", () => {
    const list = [attestation, entry(1, "arm", "v6"), entry(2, "arm", "v7"), entry(3, "arm64", "v8"), entry(4, "amd64")];
    expect(selectPlatform(list, { os: "linux", architecture: "amd64" }, "x").digest).toBe(d(4));
    expect(selectPlatform(list, { os: "linux", architecture: "x86_64" }, "x").digest).toBe(d(4));
    expect(selectPlatform(list, { os: "linux", architecture: "aarch64" }, "x").digest).toBe(d(3));
    expect(selectPlatform(list, { os: "linux", architecture: "arm", variant: "v7" }, "x").digest).toBe(d(2));
    expect(() => selectPlatform(list, { os: "windows", architecture: "amd64" }, "x")).toThrow(/no manifest for platform windows\/amd64/);
  });
});

describe("labels", () => {
  it("labels an index's children and a manifest's config and layers", () => {
    expect(childLabels({ kind: "index", mediaType: MEDIA_TYPES.ociIndex, manifests: [{ mediaType: "m", digest: d(1), size: 1 }] })).toEqual({
      "containerd.io/gc.ref.content.m.0": d(1),
    });
    expect(
      childLabels({
        kind: "manifest",
        mediaType: MEDIA_TYPES.ociManifest,
        config: { mediaType: "c", digest: d(1), size: 1 },
        layers: [{ mediaType: "l", digest: d(2), size: 1 }, { mediaType: "l", digest: d(3), size: 1 }],
      }),
    ).toEqual({
      "containerd.io/gc.ref.content.config": d(1),
      "containerd.io/gc.ref.content.l.0": d(2),
      "containerd.io/gc.ref.content.l.1": d(3),
    });
  });

  it("keys the distribution source by hostname, as containerd does", () => {
    expect(GC_LABELS.distributionSource("docker.io")).toBe("containerd.io/distribution.source.docker.io");
    expect(GC_LABELS.distributionSource("127.0.0.1:5000")).toBe("containerd.io/distribution.source.127.0.0.1");
    expect(GC_LABELS.distributionSource("[::1]:5000")).toBe("containerd.io/distribution.source.::1");
  });
});
