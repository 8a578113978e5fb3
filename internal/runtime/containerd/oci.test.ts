import { describe, expect, it } from "vitest";
import { chainIds, parseImageConfig } from "./oci.ts";

const d = (c: string) => `sha256:${c.repeat(64)}`;

describe("chainIds", () => {
  it("starts with the first diff_id and hashes each next one onto its parent", () => {
    // Values as containerd's identity.ChainIDs computes them.
    expect(chainIds([])).toEqual([]);
    expect(chainIds([d("a")])).toEqual([d("a")]);
    const [first, second] = chainIds([d("a"), d("b")]);
    expect(first).toBe(d("a"));
    // sha256("sha256:aaa… sha256:bbb…"), computed independently.
    expect(second).toBe("sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c");
    expect(chainIds([d("a"), d("b"), d("c")])[1]).toBe(second);
  });
});

describe("parseImageConfig", () => {
  it("reads the process defaults, diff_ids and stop signal", () => {
    const bytes = Buffer.from(
      JSON.stringify({
        config: { Entrypoint: ["/bin/sh"], Cmd: ["-c", "x"], Env: ["A=1"], WorkingDir: "/w", User: "1000", StopSignal: "SIGQUIT" },
        rootfs: { type: "layers", diff_ids: [d("a")] },
      }),
    );
    expect(parseImageConfig(bytes, "t")).toEqual({
      config: { entrypoint: ["/bin/sh"], cmd: ["-c", "x"], env: ["A=1"], workingDir: "/w", user: "1000" },
      diffIds: [d("a")],
      stopSignal: "SIGQUIT",
    });
  });

  it("defaults what an image leaves out (null Entrypoint, no config)", () => {
    const bytes = Buffer.from(JSON.stringify({ config: { Entrypoint: null }, rootfs: { diff_ids: [] } }));
    expect(parseImageConfig(bytes, "t").config).toEqual({ entrypoint: [], cmd: [], env: [], workingDir: "", user: "" });
  });

  it("names the blob when the JSON is bad", () => {
    expect(() => parseImageConfig(Buffer.from("{"), "config sha256:x")).toThrow(/config sha256:x/);
  });
});
