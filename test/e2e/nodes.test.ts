// Two nodes end to end: the real node (containerd + runc + CNI) and "n2", a hollow node (the
// real agent on the fake runtime, in-process), with the scheduler and the controller-manager
// running as in `skiff up` (node lifecycle: 5 s grace, 5 s eviction timeout).
//   · scheduling decisions a user can see: a pod too big for every node stays Pending and
//     `skiffctl describe` says why ("0/2 nodes are available: …"), and it is placed once capacity
//     frees up; nodeSelector and a taint are respected.
//   · node failure: n2's agent stops → n2 goes Unknown with the unreachable taints → after the
//     eviction timeout its pods are recreated on the real node, where they serve.
import { clone, create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeSchema, TaintSchema, type Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { TAINT_UNREACHABLE } from "../../internal/controller/node/taints.ts";
import { wget } from "../agent/cluster.ts";
import { IMAGE_V1, PAGE, POD_EVICTION_TIMEOUT_MS, serving, startE2ECluster, waitFor, type E2ECluster, type FakeNode } from "./cluster.ts";

const SLOW = 60_000;
const N2 = "n2";

let e: E2ECluster;
let n2: FakeNode;
let real: string;
/** The real node's CPUs (its allocatable cpu, whole cores). */
let realCpu: number;

beforeAll(async () => {
  e = await startE2ECluster();
  real = e.node.nodeName;
  realCpu = Number((await e.getNode(real)).status!.allocatable.cpu);
  expect(Number.isInteger(realCpu)).toBe(true);
  // One CPU more than the real node.
  n2 = await e.addFakeNode(N2, { cpu: String(realCpu + 1), memory: "8Gi", pods: "110" });
  await waitFor("n2 Ready", async () => readyOf(await e.getNode(N2)) === "True", SLOW);
}, 180_000);

afterAll(async () => {
  await e?.stop();
}, 120_000);

const readyOf = (n: Node) => n.status?.conditions.find((c) => c.type === "Ready")?.status;
const taintsOf = (n: Node) => (n.spec?.taints ?? []).map((t) => `${t.key}=${t.value}:${t.effect}`).sort();

async function getPod(name: string): Promise<Pod> {
  return e.node.pods.get("default", name);
}

async function waitForPod(name: string, what: string, pred: (p: Pod) => boolean): Promise<Pod> {
  return waitFor(`pod ${name}: ${what}`, async () => {
    const p = await getPod(name);
    return pred(p) && p;
  }, SLOW);
}

/** Changes a Node's metadata/spec with a conditional update, retried on conflict (the agent writes its status meanwhile). */
async function editNode(name: string, edit: (n: Node) => void): Promise<void> {
  const nodes = e.client<Node>("Node");
  for (;;) {
    const next = clone(NodeSchema, await nodes.get("", name));
    edit(next);
    try {
      await nodes.update(next);
      return;
    } catch (err) {
      if (ConnectError.from(err).code !== Code.Aborted) throw err;
    }
  }
}

/** `skiffctl describe pod NAME`, once it says `text`. */
async function describeSays(name: string, text: string): Promise<string> {
  let last = "";
  try {
    return await waitFor(`describe pod ${name} to show "${text}"`, async () => {
      last = await e.ok("describe", "pod", name);
      return last.includes(text) && last;
    }, SLOW);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nlast output:\n${last}`, { cause: err });
  }
}

/** A bare pod running httpd; `spec` adds pod spec fields, `cpu` a CPU request. */
function podYaml(name: string, spec: string, cpu?: string): string {
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  terminationGracePeriodSeconds: 1
${spec.replace(/^/gm, "  ").trimEnd()}
  containers:
    - name: httpd
      image: ${IMAGE_V1}
      command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
${cpu ? `      resources:\n        requests: {cpu: "${cpu}"}\n` : ""}`;
}

function deploymentYaml(name: string, replicas: number): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
spec:
  replicas: ${replicas}
  selector:
    matchLabels: {app: ${name}}
  template:
    metadata:
      labels: {app: ${name}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: httpd
          image: ${IMAGE_V1}
          command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
          resources:
            requests: {cpu: 10m, memory: 16Mi}
`;
}

const page = (p: Pod) => wget(`http://${p.status!.podIp}:8080/`);

describe.sequential("scheduling and node failure with two nodes", () => {
  it("a pod too big for every node stays Pending and describe says why; it is placed once capacity frees up", async () => {
    await e.ok("apply", "-f", e.manifest("blocker.yaml", podYaml("blocker", `nodeSelector: {kubernetes.io/hostname: ${N2}}`, "1")));
    await waitForPod("blocker", `Running on ${N2}`, (p) => p.spec?.nodeName === N2 && serving(p));
    // blocker holds 1 CPU of n2's realCpu + 1; hungry wants realCpu + 1: neither node has it free.
    await e.ok("apply", "-f", e.manifest("hungry.yaml", podYaml("hungry", "", String(realCpu + 1))));
    const pending = await describeSays("hungry", "0/2 nodes are available: 2 Insufficient cpu.");
    expect(pending).toMatch(/^Status:\s+Pending$/m);
    expect(pending).toMatch(/Warning\s+FailedScheduling\s+.*0\/2 nodes are available: 2 Insufficient cpu\./);
    expect((await getPod("hungry")).spec?.nodeName).toBe("");
    expect(await e.ok("get", "pod", "hungry")).toMatch(/^hungry\s+0\/1\s+Pending\s/m);

    await e.ok("delete", "pod", "blocker");
    const placed = await waitForPod("hungry", `Running on ${N2}`, (p) => p.spec?.nodeName === N2 && serving(p));
    expect(placed.spec?.nodeName).toBe(N2);
    await describeSays("hungry", `Successfully assigned default/hungry to ${N2}`);

    await e.ok("delete", "pod", "hungry");
    await waitFor("blocker and hungry gone", async () => (await e.node.pods.list("default")).items.length === 0, SLOW);
  });

  it("nodeSelector and taints are respected", async () => {
    await editNode(N2, (n) => {
      n.metadata!.labels.disk = "ssd";
      n.spec!.taints.push(create(TaintSchema, { key: "dedicated", value: "special", effect: "NoSchedule" }));
    });
    const tolerate = `tolerations:\n  - {key: dedicated, operator: Equal, value: special, effect: NoSchedule}`;
    await e.ok(
      "apply",
      "-f", e.manifest("spread.yaml", deploymentYaml("spread", 3)),
      "-f", e.manifest("ssd-ok.yaml", podYaml("ssd-ok", `nodeSelector: {disk: ssd}\n${tolerate}`)),
      "-f", e.manifest("ssd-no.yaml", podYaml("ssd-no", "nodeSelector: {disk: ssd}")),
      "-f", e.manifest("pinned.yaml", podYaml("pinned", `nodeSelector: {kubernetes.io/hostname: ${real}}\n${tolerate}`)),
    );

    // Tolerating the taint and selecting disk=ssd: n2. Selecting the real node by hostname: there.
    await waitForPod("ssd-ok", `Running on ${N2}`, (p) => p.spec?.nodeName === N2 && serving(p));
    const pinned = await waitForPod("pinned", `Running on ${real}`, (p) => p.spec?.nodeName === real && serving(p));
    expect(await page(pinned)).toBe(PAGE.v1);
    // No toleration: the Deployment's pods all go to the untainted real node, and serve.
    const spread = await waitFor("3 spread pods serving", async () => {
      const ps = (await e.pods("app=spread")).filter(serving);
      return ps.length === 3 && ps;
    }, SLOW);
    for (const p of spread) {
      expect(p.spec?.nodeName).toBe(real);
      expect(await page(p)).toBe(PAGE.v1);
    }
    // disk=ssd without the toleration: nowhere to go, and describe says why for each node.
    const why = await describeSays("ssd-no", "0/2 nodes are available: ");
    expect(why).toContain("1 node(s) didn't match Pod's node affinity/selector");
    expect(why).toContain("1 node(s) had untolerated taint {dedicated: special}");
    expect((await getPod("ssd-no")).spec?.nodeName).toBe("");

    // The taint lifted, it is placed on n2.
    await editNode(N2, (n) => {
      n.spec!.taints = n.spec!.taints.filter((t) => t.key !== "dedicated");
    });
    await waitForPod("ssd-no", `Running on ${N2}`, (p) => p.spec?.nodeName === N2 && serving(p));

    await e.ok("delete", "deployment", "spread");
    await e.ok("delete", "pod", "ssd-ok", "ssd-no", "pinned");
    await waitFor("all pods gone", async () => (await e.node.pods.list("default")).items.length === 0, SLOW);
  });

  it("a node that stops reporting goes Unknown with the unreachable taints; its pods are recreated on the other node after the toleration", async () => {
    // Pods on n2 first: the real node cordoned while they are placed.
    expect(await e.ok("cordon", real)).toContain("cordoned");
    await e.ok("apply", "-f", e.manifest("mover.yaml", deploymentYaml("mover", 2)));
    const before = await waitFor("2 mover pods serving on n2", async () => {
      const ps = (await e.pods("app=mover")).filter(serving);
      return ps.length === 2 && ps.every((p) => p.spec?.nodeName === N2) && ps;
    }, SLOW);
    expect(await e.ok("uncordon", real)).toContain("uncordoned");
    const oldNames = before.map((p) => p.metadata!.name);

    await n2.stop();
    const down = await waitFor("n2 Unknown and tainted unreachable", async () => {
      const n = await e.getNode(N2);
      return readyOf(n) === "Unknown" && taintsOf(n).length === 2 && n;
    }, SLOW);
    expect(taintsOf(down)).toEqual([`${TAINT_UNREACHABLE}=:NoExecute`, `${TAINT_UNREACHABLE}=:NoSchedule`]);
    expect(await e.ok("get", "nodes")).toMatch(new RegExp(`^${N2}\\s+Unknown\\s`, "m"));
    const taintedAt = timestampMs(down.spec!.taints.find((t) => t.effect === "NoExecute")!.timeAdded!);

    const after = await waitFor("2 mover pods serving on the real node", async () => {
      const ps = (await e.pods("app=mover")).filter(serving);
      return ps.length === 2 && ps.every((p) => p.spec?.nodeName === real) && ps;
    }, SLOW);
    for (const p of after) {
      expect(oldNames).not.toContain(p.metadata!.name);
      // Replaced only once the pods' toleration of the taint (the eviction timeout) ran out
      // (creation timestamps have second precision: a second of slack).
      expect(timestampMs(p.metadata!.creationTimestamp!)).toBeGreaterThanOrEqual(taintedAt + POD_EVICTION_TIMEOUT_MS - 1000);
      expect(await page(p)).toBe(PAGE.v1);
    }
    // Nobody on n2 can confirm the old pods stopped: they are force-deleted after their grace.
    await waitFor("the old pods deleted", async () => {
      const names = (await e.pods("app=mover")).map((p) => p.metadata!.name);
      return oldNames.every((n) => !names.includes(n));
    }, SLOW);
  });
});
