// Agents started with `--pod-cidr allocated` take the ranges the controller-manager hands out
// from its --cluster-cidr, and route to each other by them.
import { afterAll, beforeAll, expect, it } from "vitest";
import { SERVER_PORT, serverContainer, startMultiNode, waitFor, type MultiNodeCluster } from "../harness/multinode.ts";

let c: MultiNodeCluster;

beforeAll(async () => {
  c = await startMultiNode({ nodes: 2, allocatePodCidrs: true });
});

afterAll(async () => {
  await c?.stop();
});

it("nodes get distinct pod CIDRs from the cluster CIDR, pods get addresses in them and reach each other", async () => {
  const [a, b] = c.nodes;
  const prefix = c.clusterCidr.split(".").slice(0, 2).join(".");
  const third = Number(c.clusterCidr.split(".")[2]);
  for (const n of [a, b]) {
    expect(n.podCidr).toMatch(/^\d+\.\d+\.\d+\.0\/24$/);
    expect(n.podCidr.startsWith(`${prefix}.`)).toBe(true);
    const t = Number(n.podCidr.split(".")[2]);
    expect(t >= third && t < third + 16).toBe(true);
  }
  expect(a.podCidr).not.toBe(b.podCidr);
  await waitFor("routes to each other's allocated range", async () =>
    (await a.routes()).some((r) => r.dst === b.podCidr && r.gateway === b.ip) && (await b.routes()).some((r) => r.dst === a.podCidr && r.gateway === a.ip), 15_000);

  await c.createPod(a, "pa", { containers: [serverContainer()] });
  await c.createPod(b, "pb", { containers: [serverContainer()] });
  const pa = await c.waitForRunning("pa");
  const pb = await c.waitForRunning("pb");
  expect(pa.status!.podIp.startsWith(a.podCidr.replace(/0\/24$/, ""))).toBe(true);
  expect(pb.status!.podIp.startsWith(b.podCidr.replace(/0\/24$/, ""))).toBe(true);
  await waitFor("httpd of pb", () => c.wgetFromPod(pb, `http://127.0.0.1:${SERVER_PORT}/`).then(() => true, () => false), 20_000);
  expect(await c.sourceSeenBy(pb, pa)).toBe(pa.status!.podIp);
});
