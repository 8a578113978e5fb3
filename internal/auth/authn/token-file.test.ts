import { describe, expect, it } from "vitest";
import { parseTokenFile } from "./token-file.ts";

describe("static token file", () => {
  it("reads Kubernetes' CSV: token,user,uid and quoted groups", () => {
    const tokens = parseTokenFile('# comment\n\nt1,alice,1001,"devs,ops"\nt2,ci-bot,,\nt3,bob,7\n');
    expect(tokens.get("t1")).toEqual({ name: "alice", uid: "1001", groups: ["devs", "ops"], authenticatedBy: "token-file" });
    expect(tokens.get("t2")).toEqual({ name: "ci-bot", uid: undefined, groups: [], authenticatedBy: "token-file" });
    expect(tokens.get("t3")?.groups).toEqual([]);
    expect(tokens.size).toBe(3);
  });

  it("names the line of a bad entry", () => {
    expect(() => parseTokenFile("t1,alice\n", "tokens.csv")).toThrow("tokens.csv line 1: expected token,user,uid");
    expect(() => parseTokenFile('t1,alice,1,"devs\n')).toThrow("line 1: unbalanced quotes");
    expect(() => parseTokenFile("t1,a,1\nt1,b,2\n")).toThrow("line 2: the same token appears twice");
    expect(() => parseTokenFile(",a,1\n")).toThrow("must not be empty");
  });
});
