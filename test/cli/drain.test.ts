// skiffctl cordon, uncordon and drain end to end: the real CLI as a child process against a
// real apiserver on a real etcd. The test plays the node agents: a bound pod being deleted
// stays (with its grace period) until "its agent" confirms with a delete of grace period 0.
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeSchema, type Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { spawnSkiffctl } from "../../internal/cli/testing.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane();
  for (const name of ["n1", "n2", "n3"]) await cp.client<Node>("Node").create(create(NodeSchema, { metadata: { name } }));
});
afterAll(() => cp?.stop());

const skiffctl = (...args: string[]) => spawnSkiffctl(cp.server.url, args).done;
const pods = () => cp.client<Pod>("Pod");

/** A pod on `node` ("" = not scheduled), owned by a ReplicaSet unless `bare`. */
async function pod(name: string, node: string, opts: { bare?: boolean; grace?: bigint } = {}): Promise<Pod> {
  return pods().create(
    create(PodSchema, {
      metadata: {
        name,
        namespace: "default",
        ownerReferences: opts.bare ? [] : [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-abc", uid: "rs-uid", controller: true }],
      },
      spec: { nodeName: node, terminationGracePeriodSeconds: opts.grace, containers: [{ name: "c", image: "busybox" }] },
    }),
  );
}

const onNode = async (node: string) => (await pods().list("", { fieldSelector: `spec.nodeName=${node}` })).items.map((p) => p.metadata!.name).sort();

describe("node maintenance", () => {
  it("cordons and uncordons", async () => {
    expect(await skiffctl("cordon", "n1")).toEqual({ code: 0, out: "node/n1 cordoned\n", err: "" });
    expect(await skiffctl("cordon", "n1")).toEqual({ code: 0, out: "node/n1 already cordoned\n", err: "" });
    expect((await skiffctl("get", "nodes", "n1")).out).toMatch(/\nn1 +Unknown,SchedulingDisabled /);
    expect((await skiffctl("get", "nodes", "--field-selector", "spec.unschedulable=true", "-o", "name")).out).toBe("node/n1\n");
    expect(await skiffctl("uncordon", "node/n1")).toEqual({ code: 0, out: "node/n1 uncordoned\n", err: "" });
    expect((await cp.client<Node>("Node").get("", "n1")).spec!.unschedulable).toBe(false);
    expect(await skiffctl("cordon", "n9")).toEqual({ code: 1, out: "", err: 'Error: node "n9" not found\n' });
  });

  it("refuses to drain a pod no controller owns without --force", async () => {
    await pod("web-1", "n1");
    await pod("bare", "n1", { bare: true });
    expect(await skiffctl("drain", "n1")).toEqual({
      code: 1,
      out: "node/n1 cordoned\n",
      err: 'Error: unable to drain node "n1": cannot delete Pods that declare no controller (use --force to override): default/bare\n',
    });
    expect(await onNode("n1")).toEqual(["bare", "web-1"]);
    expect((await pods().get("default", "web-1")).metadata!.deletionTimestamp).toBeUndefined();
  });

  it("drains: evicts, waits for the agent's confirmation, then reports the node drained", async () => {
    await pod("web-2", "n1", { grace: 20n });
    await pod("web-3", "n2");
    await pod("pending", "");
    const drain = spawnSkiffctl(cp.server.url, ["drain", "n1", "--force", "--timeout", "60s"]);
    await drain.waitFor(/evicting pod default\/bare\nevicting pod default\/web-1\nevicting pod default\/web-2\n/);
    expect(drain.err).toBe("Warning: deleting Pods that declare no controller: default/bare\n");
    // Deleted with each pod's own grace period, but still there: their node agent has not confirmed.
    const grace = async (name: string) => (await pods().get("default", name)).metadata!.deletionGracePeriodSeconds;
    expect([await grace("bare"), await grace("web-1"), await grace("web-2")]).toEqual([30n, 30n, 20n]);
    await new Promise((r) => setTimeout(r, 1000));
    expect(drain.out).not.toMatch(/drained/);
    expect(await onNode("n1")).toEqual(["bare", "web-1", "web-2"]);
    for (const name of ["web-2", "bare", "web-1"]) {
      await pods().delete("default", name, { gracePeriodSeconds: 0n }); // the agent: containers stopped
      await drain.waitFor(new RegExp(`pod/${name} evicted\\n`));
    }
    expect(await drain.done).toEqual({
      code: 0,
      err: "Warning: deleting Pods that declare no controller: default/bare\n",
      out:
        "node/n1 already cordoned\nevicting pod default/bare\nevicting pod default/web-1\nevicting pod default/web-2\n" +
        "pod/web-2 evicted\npod/bare evicted\npod/web-1 evicted\nnode/n1 drained\n",
    });
    expect(await onNode("n1")).toEqual([]);
    // Other nodes' pods and pods on no node are not touched.
    expect(await onNode("n2")).toEqual(["web-3"]);
    expect((await pods().get("default", "pending")).metadata!.deletionTimestamp).toBeUndefined();
  });

  it("with --grace-period 0 the pods go at once", async () => {
    const drain = await skiffctl("drain", "n2", "--grace-period", "0");
    expect(drain).toEqual({ code: 0, err: "", out: "node/n2 cordoned\nevicting pod default/web-3\npod/web-3 evicted\nnode/n2 drained\n" });
    expect(await onNode("n2")).toEqual([]);
  });

  it("gives up after --timeout when the pods are not confirmed gone, leaving the node cordoned", async () => {
    await pod("web-4", "n3");
    const drain = await skiffctl("drain", "n3", "--timeout", "2s");
    expect(drain).toEqual({
      code: 1,
      out: "node/n3 cordoned\nevicting pod default/web-4\n",
      err: 'Error: unable to drain node "n3": timed out after 2s waiting for pods to be deleted: default/web-4\n',
    });
    expect((await pods().get("default", "web-4")).metadata!.deletionTimestamp).toBeDefined();
    expect((await cp.client<Node>("Node").get("", "n3")).spec!.unschedulable).toBe(true);
    expect(await skiffctl("uncordon", "n3")).toMatchObject({ code: 0, out: "node/n3 uncordoned\n" });
  });
});
