import { describe, expect, it } from "vitest";
import { etcdEnvironment } from "./etcd-process.ts";

describe("etcd's environment", () => {
  it("runs etcd with GOGC=200 and everything else of ours, unless the operator chose a GOGC", () => {
    const env = etcdEnvironment({ PATH: "/usr/bin", ETCD_UNSUPPORTED_ARCH: "arm" });
    expect(env).toEqual({ PATH: "/usr/bin", ETCD_UNSUPPORTED_ARCH: "arm", GOGC: "200" });
    expect(etcdEnvironment({ PATH: "/usr/bin", GOGC: "off" })).toEqual({ PATH: "/usr/bin", GOGC: "off" });
  });
});
