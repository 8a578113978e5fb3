// Kubernetes manifests written the way public projects write them (test/fixtures/manifests/
// real-world/) applied with the real skiffctl to a cluster composed like `skiff up`, run on a real
// node (containerd + runc + CNI) until every pod is Ready, then applied again: every object is
// `unchanged` — bound, running pods with pod-level securityContext, dnsConfig,
// enableServiceLinks: false, a sidecar, hooks, a startup probe, termination-message settings and a
// Service with ClientIP affinity and IPv4 single-stack included. Then a file with broken documents next to good ones.
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import { wget } from "../agent/cluster.ts";
import { PAGE, serving, startE2ECluster, waitFor, type E2ECluster } from "./cluster.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/manifests/real-world/", import.meta.url));
/** Pods starting and probes passing get this long. */
const SLOW = 90_000;

let e: E2ECluster;

beforeAll(async () => {
  e = await startE2ECluster();
}, 180_000);

afterAll(async () => {
  await e?.stop();
}, 120_000);

/** The objects of the fixture folder as skiffctl names them, in the order it applies them. */
const OBJECTS = [
  "namespace/shop",
  "serviceaccount/frontend",
  "role.rbac.authorization.k8s.io/frontend-config-reader",
  "rolebinding.rbac.authorization.k8s.io/frontend-config-reader",
  "configmap/frontend-config",
  "deployment.apps/frontend",
  "service/frontend",
  "deployment.apps/cart",
  "service/cart",
  "pod/toolbox",
];

async function shopPods(): Promise<Pod[]> {
  return (await e.client<Pod>("Pod").list("shop")).items;
}

describe("real-world manifests", () => {
  it("apply, run on a real node until Ready, and re-apply as unchanged", async () => {
    expect(readdirSync(FIXTURES).filter((f) => f.endsWith(".yaml"))).toHaveLength(5);
    const first = await e.skiffctl("apply", "-f", FIXTURES);
    expect(first.err).toBe("");
    expect(first.code).toBe(0);
    expect(first.out).toBe(OBJECTS.map((o) => `${o} created\n`).join(""));

    // frontend ×2, cart, toolbox: all Running and Ready on the real node.
    let last = "";
    const pods = await waitFor(
      "every shop pod serving",
      async () => {
        const all = await shopPods();
        last = all.map((p) => `${p.metadata!.name} ${p.status?.phase} ${p.status?.message ?? ""}`).join("; ");
        return all.length === 4 && all.every(serving) && all;
      },
      SLOW,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\npods: ${last}`, { cause: err });
    });
    const frontend = pods.filter((p) => p.metadata!.labels["app.kubernetes.io/name"] === "frontend");
    expect(frontend).toHaveLength(2);
    // What the user sees: the page, served by a non-root, read-only, capability-less container.
    expect(await wget(`http://${frontend[0].status!.podIp}:8080/`)).toBe(PAGE.v1);
    // cart's sidecar (an init container with restartPolicy: Always) runs beside it, ready.
    const cart = pods.find((p) => p.metadata!.labels.app === "cart")!;
    expect(cart.status!.initContainerStatuses.map((s) => [s.name, s.state?.running !== undefined, s.ready])).toEqual([["log-shipper", true, true]]);
    const cartService = await e.client<Service>("Service").get("shop", "cart");
    expect([cartService.spec!.sessionAffinity, cartService.spec!.sessionAffinityConfig?.clientIp?.timeoutSeconds]).toEqual(["ClientIP", 10800]);
    const toolbox = pods.find((p) => p.metadata!.name === "toolbox")!;
    expect(toolbox.spec!.nodeName).not.toBe("");
    expect(toolbox.spec!.securityContext!.runAsUser).toBe(1000n);

    // Applied again, after the scheduler bound the pods and the agent reported them: nothing changed.
    const again = await e.skiffctl("apply", "-f", FIXTURES);
    expect(again.err).toBe("");
    expect(again.code).toBe(0);
    expect(again.out).toBe(OBJECTS.map((o) => `${o} unchanged\n`).join(""));
    const after = await e.client<Pod>("Pod").get("shop", "toolbox");
    expect(after.metadata!.generation).toBe(toolbox.metadata!.generation);
  });

  it("applies the good documents of a file with bad ones, names each bad one and exits 1", async () => {
    const file = e.manifest(
      "mixed.yaml",
      `apiVersion: v1
kind: ConfigMap
metadata: {name: before}
data: {a: "1"}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec: {schedule: "0 3 * * *"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: broken}}
    spec:
      priorityClassName: high
      containers:
        - name: c
          image: skiff.local/busybox-httpd:v1
          securityContext: {readOnlyRootFilesytem: true}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: after}
data: {b: "2"}
`,
    );
    const r = await e.skiffctl("apply", "-f", file);
    expect(r.code).toBe(1);
    expect(r.out).toBe("configmap/before created\nconfigmap/after created\n");
    const lines = r.err.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^Error: ${file.replaceAll(".", "\\.")}: document 2 \\(CronJob nightly\\): unknown kind "CronJob"`));
    expect(lines[1]).toBe(
      `Error: ${file}: document 3 (Deployment broken): 2 problems: ` +
        "unsupported field spec.template.spec.priorityClassName (Skiff does not support it yet); " +
        "unknown field spec.template.spec.containers[0].securityContext.readOnlyRootFilesytem (did you mean readOnlyRootFilesystem?)",
    );
    const cms = (await e.client("ConfigMap").list("default")).items.map((c) => c.metadata!.name);
    expect(cms).toEqual(expect.arrayContaining(["before", "after"]));
    await expect(e.client("Deployment").get("default", "broken")).rejects.toThrow(/not found/);
  });
});
