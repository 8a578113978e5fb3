import { describe, expect, it } from "vitest";
import { imageNameOf } from "./import.ts";

const desc = (annotations: Record<string, string>) => ({ mediaType: "m", digest: "sha256:x", size: 1, annotations });

describe("imageNameOf", () => {
  it("prefers containerd's annotation and normalizes", () => {
    expect(imageNameOf(desc({ "io.containerd.image.name": "busybox", "org.opencontainers.image.ref.name": "x/y:1" }))).toBe(
      "docker.io/library/busybox:latest",
    );
    expect(imageNameOf(desc({ "org.opencontainers.image.ref.name": "skiff.test/busybox:v1" }))).toBe("skiff.test/busybox:v1");
  });
  it("ignores a bare tag in ref.name and a missing name", () => {
    expect(imageNameOf(desc({ "org.opencontainers.image.ref.name": "v1" }))).toBeUndefined();
    expect(imageNameOf(desc({}))).toBeUndefined();
  });
});
