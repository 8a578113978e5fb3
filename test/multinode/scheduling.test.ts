// The multi-node harness with the scheduler and controller-manager in the test process: a
// Deployment's pods spread over the nodes, and every pod reaches every other by IP, seeing the
// caller's pod IP as the source.
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DeploymentSchema, type Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import { serverContainer, startMultiNode, waitFor, type MultiNodeCluster } from "../harness/multinode.ts";

let c: MultiNodeCluster;

beforeAll(async () => {
  c = await startMultiNode({ nodes: 2, scheduler: true, controllers: true });
});

afterAll(async () => {
  await c?.stop();
});

it("a Deployment's pods land on both nodes and all reach each other with their own source IPs", async () => {
  const template = c.pod(undefined, "unused", { containers: [serverContainer()] });
  await c.cp.client<Deployment>("Deployment").create(
    create(DeploymentSchema, {
      metadata: { name: "web", namespace: "default" },
      spec: {
        replicas: 4,
        selector: { matchLabels: { app: "web" } },
        template: { metadata: { labels: { app: "web" } }, spec: template.spec },
      },
    }),
  );
  const pods = await waitFor("4 Running pods of web", async () => {
    const list = (await c.pods.list("default", { labelSelector: "app=web" })).items;
    const running = list.filter((p) => p.status?.phase === "Running" && p.status.podIp);
    return running.length === 4 ? running : undefined;
  }, 90_000);
  expect(new Set(pods.map((p) => p.spec!.nodeName))).toEqual(new Set(c.nodes.map((n) => n.name)));

  for (const p of pods) await waitFor(`httpd of ${p.metadata!.name}`, () => c.sourceSeenBy(p, p).then(() => true, () => false), 20_000);
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) continue;
      expect(await c.sourceSeenBy(to, from), `${from.metadata!.name} (${from.spec!.nodeName}) → ${to.metadata!.name} (${to.spec!.nodeName})`).toBe(from.status!.podIp);
    }
  }
});

it("a node added later gets routes on every node, and its pods reach the others", async () => {
  const added = await c.addNode();
  for (const n of c.nodes) {
    const want = c.nodes.filter((o) => o !== n).map((o) => o.podCidr).sort();
    await waitFor(`routes on ${n.name}`, async () => JSON.stringify((await n.routes()).map((r) => r.dst).sort()) === JSON.stringify(want), 15_000);
  }
  await c.createPod(added, "late", { containers: [serverContainer()] });
  const late = await c.waitForRunning("late");
  const others = (await c.pods.list("default", { labelSelector: "app=web" })).items.filter((p) => p.status?.podIp);
  for (const p of others) {
    expect(await c.sourceSeenBy(p, late)).toBe(late.status!.podIp);
  }
});
