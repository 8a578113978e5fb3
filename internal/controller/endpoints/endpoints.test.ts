import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { EndpointsSchema, type Endpoints } from "../../../gen/skiff/v1alpha1/endpoints_pb.js";
import { ConditionSchema } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { ServiceSchema, type Service } from "../../../gen/skiff/v1alpha1/service_pb.js";
import { gone, sleep, startTestCluster, testPod, waitFor, type TestCluster } from "../node/testing.ts";
import { createEndpointsController } from "./endpoints.ts";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

async function setup() {
  cluster = await startTestCluster();
  const c = cluster;
  const pods = c.client<Pod>("Pod");
  return {
    c,
    pods,
    services: c.client<Service>("Service"),
    endpoints: c.client<Endpoints>("Endpoints"),
    start: () => c.start(createEndpointsController(c.ctx)),
    /** A running pod with an IP, Ready or not. */
    async runningPod(name: string, ip: string, ready: boolean, labels = { app: "web" }) {
      const p = await pods.create(testPod(name, { nodeName: "n1", labels }));
      p.status!.phase = "Running";
      p.status!.podIp = ip;
      p.status!.conditions = [create(ConditionSchema, { type: "Ready", status: ready ? "True" : "False" })];
      return pods.updateStatus(p);
    },
  };
}

const service = (name: string, selector: Record<string, string>) =>
  create(ServiceSchema, { metadata: { name, namespace: "default", labels: { team: "a" } }, spec: { selector, ports: [{ port: 80, targetPort: "8080" }] } });

const ips = (ep: Endpoints) => ({ ready: ep.subsets.flatMap((s) => s.addresses.map((a) => a.ip)), notReady: ep.subsets.flatMap((s) => s.notReadyAddresses.map((a) => a.ip)) });

describe("endpoints controller", () => {
  it("keeps a Service's Endpoints in step with its pods, and deletes them with the Service", async () => {
    const { services, endpoints, pods, start, runningPod } = await setup();
    await runningPod("a", "10.0.0.1", true);
    await runningPod("b", "10.0.0.2", false);
    await runningPod("other", "10.0.0.9", true, { app: "db" });
    await services.create(service("web", { app: "web" }));
    await start();

    let ep = await waitFor("endpoints", () => endpoints.get("default", "web"));
    expect(ips(ep)).toEqual({ ready: ["10.0.0.1"], notReady: ["10.0.0.2"] });
    expect(ep.metadata?.labels).toEqual({ team: "a" });
    expect(ep.subsets[0].ports[0]).toMatchObject({ port: 8080, protocol: "TCP" });

    // b becomes ready
    const b = await pods.get("default", "b");
    b.status!.conditions[0].status = "True";
    await pods.updateStatus(b);
    ep = await waitFor("b ready", async () => {
      const x = await endpoints.get("default", "web");
      return ips(x).ready.length === 2 && x;
    });
    expect(ips(ep)).toEqual({ ready: ["10.0.0.1", "10.0.0.2"], notReady: [] });

    // a's labels change: it leaves the Service
    const a = await pods.get("default", "a");
    a.metadata!.labels = { app: "other" };
    await pods.update(a);
    await waitFor("a gone from endpoints", async () => ips(await endpoints.get("default", "web")).ready.join() === "10.0.0.2");

    // b is deleted (unbound pods go at once); the Endpoints become empty
    await pods.delete("default", "b", { gracePeriodSeconds: 0n });
    await waitFor("empty", async () => (await endpoints.get("default", "web")).subsets.length === 0);

    // A no-op resync writes nothing.
    const rv = (await endpoints.get("default", "web")).metadata!.resourceVersion;
    await runningPod("c", "10.0.0.3", true, { app: "unrelated" });
    await sleep(300);
    expect((await endpoints.get("default", "web")).metadata!.resourceVersion).toBe(rv);

    await services.delete("default", "web");
    await waitFor("endpoints deleted", () => gone(endpoints, "default", "web"));
  });

  it("repairs Endpoints edited or deleted by hand", async () => {
    const { services, endpoints, start, runningPod } = await setup();
    await runningPod("a", "10.0.0.1", true);
    await services.create(service("web", { app: "web" }));
    await start();
    const ep = await waitFor("endpoints", () => endpoints.get("default", "web"));
    ep.subsets = [];
    await endpoints.update(ep);
    await waitFor("repaired", async () => ips(await endpoints.get("default", "web")).ready.join() === "10.0.0.1");
    await endpoints.delete("default", "web");
    await waitFor("recreated", async () => ips(await endpoints.get("default", "web")).ready.join() === "10.0.0.1");
  });

  it("leaves the Endpoints of a Service without selector alone", async () => {
    const { services, endpoints, start, runningPod } = await setup();
    await runningPod("a", "10.0.0.1", true);
    await services.create(create(ServiceSchema, { metadata: { name: "ext", namespace: "default" }, spec: { ports: [{ port: 80 }] } }));
    await endpoints.create(create(EndpointsSchema, { metadata: { name: "ext", namespace: "default" }, subsets: [{ addresses: [{ ip: "192.0.2.10" }], ports: [{ port: 80 }] }] }));
    await start();
    await sleep(300);
    expect(ips(await endpoints.get("default", "ext"))).toEqual({ ready: ["192.0.2.10"], notReady: [] });
  });
});
