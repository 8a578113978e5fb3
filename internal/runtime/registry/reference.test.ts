import { describe, expect, it } from "vitest";
import { RegistryError } from "./errors.ts";
import { apiHost, parseReference } from "./reference.ts";

const D = `sha256:${"a".repeat(64)}`;

describe("parseReference", () => {
  it.each([
    ["busybox", "docker.io", "library/busybox", "latest", undefined, "docker.io/library/busybox:latest"],
    ["busybox:1.36", "docker.io", "library/busybox", "1.36", undefined, "docker.io/library/busybox:1.36"],
    ["user/app", "docker.io", "user/app", "latest", undefined, "docker.io/user/app:latest"],
    ["docker.io/busybox", "docker.io", "library/busybox", "latest", undefined, "docker.io/library/busybox:latest"],
    ["index.docker.io/library/busybox", "docker.io", "library/busybox", "latest", undefined, "docker.io/library/busybox:latest"],
    ["host:5000/ns/app:v1", "host:5000", "ns/app", "v1", undefined, "host:5000/ns/app:v1"],
    ["skiff.local:5000/nope:v1", "skiff.local:5000", "nope", "v1", undefined, "skiff.local:5000/nope:v1"],
    ["localhost/app", "localhost", "app", "latest", undefined, "localhost/app:latest"],
    ["localhost:5000/a/b/c", "localhost:5000", "a/b/c", "latest", undefined, "localhost:5000/a/b/c:latest"],
    ["127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", undefined, "127.0.0.1:5000/app:latest"],
    ["[::1]:5000/app:v2", "[::1]:5000", "app", "v2", undefined, "[::1]:5000/app:v2"],
    ["Registry/app", "Registry", "app", "latest", undefined, "Registry/app:latest"],
    ["my-reg.example.com/a_b/c__d/e-f.g:tag_1.2-x", "my-reg.example.com", "a_b/c__d/e-f.g", "tag_1.2-x", undefined, "my-reg.example.com/a_b/c__d/e-f.g:tag_1.2-x"],
    [`app@${D}`, "docker.io", "library/app", undefined, D, `docker.io/library/app@${D}`],
    [`host:5000/app:v1@${D}`, "host:5000", "app", "v1", D, `host:5000/app@${D}`],
  ])("%s", (ref, domain, path, tag, digest, name) => {
    const r = parseReference(ref);
    expect(r).toMatchObject({ domain, path, name, repository: `${domain}/${path}` });
    expect(r.tag).toBe(tag);
    expect(r.digest).toBe(digest);
  });

  it.each([
    ["", /empty reference/],
    [" busybox", /whitespace/],
    ["Busybox", /must be lowercase/],
    ["host:5000/App", /must be lowercase/],
    ["a".repeat(64).replace(/a/g, "f"), /image ID/],
    ["busybox:", /bad tag ""/],
    ["busybox:-x", /bad tag/],
    [`busybox:${"t".repeat(129)}`, /bad tag/],
    ["busybox@sha256:abc", /bad digest/],
    [`busybox@md5:${"a".repeat(32)}`, /unsupported digest algorithm "md5"/],
    [`busybox@sha256:${"A".repeat(64)}`, /lower-case hex/],
    ["host:5000/", /missing repository name/],
    ["a//b", /bad repository name/],
    ["-host.com/app", /bad registry host/],
    ["host:port/app", /bad registry host|bad tag/],
    ["app_/x", /bad repository name/],
    [`h.io/${"a".repeat(260)}`, /longer than 255/],
  ])("rejects %j", (ref, message) => {
    let err: unknown;
    try {
      parseReference(ref);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).reason).toBe("InvalidReference");
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toContain(`invalid image reference "${ref}"`);
  });

  it("maps Docker Hub to its API host", () => {
    expect(apiHost("docker.io")).toBe("registry-1.docker.io");
    expect(apiHost("localhost:5000")).toBe("localhost:5000");
  });
});
