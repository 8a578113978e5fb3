import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { decodeContinue, encodeContinue } from "./continue.ts";

const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return "ok";
  } catch (e) {
    return ConnectError.from(e).code;
  }
};

describe("continue tokens", () => {
  it("round-trip any key, and are URL-safe", () => {
    const pos = { revision: 123456, start: "ns/näme-with-ünïcode/\u0000" };
    const token = encodeContinue(pos);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeContinue(token)).toEqual(pos);
  });

  it("refuse anything this server did not hand out", () => {
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const bad = [
      "",
      "%%%",
      "a".repeat(5000),
      Buffer.from("not json").toString("base64url"),
      enc([1, 2]),
      enc({ v: 1, rv: 0, start: "a" }),
      enc({ v: 1, rv: 1.5, start: "a" }),
      enc({ v: 1, rv: 7, start: 7 }),
      enc({ v: 9, rv: 7, start: "a" }),
      enc({ v: 1, rv: 7, start: "a", more: 1 }),
    ];
    for (const t of bad) expect(codeOf(() => decodeContinue(t)), t.slice(0, 40)).toBe(Code.InvalidArgument);
  });
});
