import { describe, expect, it } from "vitest";
import { parseChallenges } from "./auth.ts";
import { formatErrorDetails, parseErrorBody } from "./errors.ts";
import { schemeFor } from "./transport.ts";

describe("parseChallenges", () => {
  it("parses Docker Hub's Bearer challenge", () => {
    expect(
      parseChallenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
      ),
    ).toEqual([
      {
        scheme: "bearer",
        params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/busybox:pull" },
      },
    ]);
  });

  it("parses several challenges, unquoted values, escapes and odd spacing", () => {
    expect(parseChallenges('Basic realm="basic-realm", Bearer  realm = "https://a/t" , service=svc, scope="x \\"y\\""')).toEqual([
      { scheme: "basic", params: { realm: "basic-realm" } },
      { scheme: "bearer", params: { realm: "https://a/t", service: "svc", scope: 'x "y"' } },
    ]);
  });

  it("survives junk", () => {
    expect(parseChallenges("")).toEqual([]);
    expect(parseChallenges("Negotiate")).toEqual([{ scheme: "negotiate", params: {} }]);
    expect(parseChallenges('Bearer realm="unterminated')).toEqual([{ scheme: "bearer", params: { realm: "unterminated" } }]);
  });
});

describe("error bodies", () => {
  it("formats v2 errors like Docker", () => {
    const errors = parseErrorBody(
      '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"v1"}},{"code":"DENIED","message":"no"}]}',
    );
    expect(formatErrorDetails(errors)).toBe("manifest unknown: manifest unknown; denied: no");
  });

  it("reads token servers' {details}", () => {
    expect(formatErrorDetails(parseErrorBody('{"details":"incorrect username or password"}'))).toBe(
      "incorrect username or password",
    );
    expect(parseErrorBody("not json")).toEqual([]);
  });
});

describe("schemeFor", () => {
  it("uses plain HTTP only for loopback and insecure registries", () => {
    expect(schemeFor("docker.io")).toBe("https");
    expect(schemeFor("registry.example.com:5000")).toBe("https");
    expect(schemeFor("localhost")).toBe("http");
    expect(schemeFor("localhost:5000")).toBe("http");
    expect(schemeFor("127.0.0.1:5000")).toBe("http");
    expect(schemeFor("127.1.2.3")).toBe("http");
    expect(schemeFor("[::1]:5000")).toBe("http");
    expect(schemeFor("skiff.local:5000", ["skiff.local:5000"])).toBe("http");
    expect(schemeFor("skiff.local:5000", ["http://skiff.local:5000/"])).toBe("http");
    expect(schemeFor("skiff.local:5000", ["skiff.local"])).toBe("http");
    expect(schemeFor("skiff.local:5000", ["skiff.local:5001"])).toBe("https");
  });
});
