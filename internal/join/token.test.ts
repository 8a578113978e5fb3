import { describe, expect, it } from "vitest";
import { createBootstrapTokenAuthenticator } from "./authenticator.ts";
import { formatJoinToken, parseJoinToken, tokenSecret, tokenSecretViolations, type StoredToken } from "./token.ts";

const HASH = "a".repeat(64);

describe("join tokens", () => {
  it("round-trip through their text form, and a malformed one is refused without echoing it", () => {
    const t = { caHash: HASH, id: "abc123", secret: "0123456789abcdef" };
    expect(parseJoinToken(formatJoinToken(t))).toEqual(t);
    for (const bad of [`K10${HASH}::abc123`, `K10${HASH.slice(1)}::abc123.0123456789abcdef`, `K10${HASH}::ABC123.0123456789abcdef`, "abc123.0123456789abcdef"]) {
      expect(() => parseJoinToken(bad)).toThrow(/K10<64 hex digits/);
      try {
        parseJoinToken(bad);
      } catch (err) {
        expect((err as Error).message).not.toContain("0123456789abcdef");
      }
    }
  });
});

describe("bootstrap token authenticator", () => {
  const stored = (o: Partial<StoredToken> = {}) => tokenSecret({ id: "abc123", secret: "0123456789abcdef", role: "agent", description: "", ...o });
  const authn = (s = stored(), now = Date.now()) => createBootstrapTokenAuthenticator((ns, name) => (ns === s.metadata!.namespace && name === s.metadata!.name ? s : undefined), () => now);

  it("names the caller system:bootstrap:<id> in the bootstrappers groups of its role", () => {
    expect(authn().authenticate("abc123.0123456789abcdef")).toEqual({
      name: "system:bootstrap:abc123",
      groups: ["system:bootstrappers", "system:bootstrappers:agent"],
      authenticatedBy: "bootstrap-token",
    });
    expect((authn(stored({ role: "server" })).authenticate("abc123.0123456789abcdef") as { groups: string[] }).groups).toContain("system:bootstrappers:server");
  });

  it("refuses a wrong secret, an unknown id, an expired token and one whose expiry does not parse", () => {
    expect(authn().authenticate("abc123.0123456789abcdee")).toBeUndefined();
    expect(authn().authenticate("zzz999.0123456789abcdef")).toBeUndefined();
    expect(authn(stored({ expires: new Date(Date.now() - 1) })).authenticate("abc123.0123456789abcdef")).toBeUndefined();
    const broken = stored();
    broken.data.expiration = new TextEncoder().encode("next tuesday");
    expect(authn(broken).authenticate("abc123.0123456789abcdef")).toBeUndefined();
  });
});

describe("token Secret validation", () => {
  it("accepts what token create writes and names every field the authenticator would not act on", () => {
    const good = tokenSecret({ id: "abc123", secret: "0123456789abcdef", role: "agent", description: "x", expires: new Date() });
    expect(tokenSecretViolations(good)).toEqual([]);
    const bad = tokenSecret({ id: "abc123", secret: "0123456789abcdef", role: "agent", description: "" });
    bad.data.role = new TextEncoder().encode("admin");
    bad.data["auth-extra-groups"] = new TextEncoder().encode("system:masters");
    bad.data.expiration = new TextEncoder().encode("soon");
    bad.metadata!.name = "bootstrap-token-zzz999";
    expect(tokenSecretViolations(bad).map((v) => v.field)).toEqual(["data[auth-extra-groups]", "metadata.name", "data[role]", "data[expiration]"]);
  });
});
