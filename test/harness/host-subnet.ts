// The host bridge subnet of a run that puts network namespaces on one bridge (the multinode
// harness, test/ha's netns servers): a /24 in 10.232.0.0/16 that no host route touches yet.
import { randomInt } from "node:crypto";
import { runChecked } from "../../internal/network/exec.ts";

/** The third octet of a free 10.232.<n>.0/24 (random, so parallel runs rarely pick the same one). */
export async function freeHostSubnet(): Promise<number> {
  const routes = (await runChecked("ip", ["-4", "route", "show", "table", "all"])).stdout;
  for (let i = 0; i < 50; i++) {
    const third = randomInt(256);
    if (!routes.includes(`10.232.${third}.`)) return third;
  }
  throw new Error("no free /24 in 10.232.0.0/16");
}
