// Pods that cannot run, on real parts (cluster.ts) and real registries (Debian docker-registry,
// test/harness/registry.ts): an image missing from its registry, a registry that refuses (auth)
// or is down, a command missing from the image. Each ends as the waiting reason a Kubernetes user
// knows, with the registry's or runc's own words, and is retried; the agent meanwhile keeps
// running the node's other pods. (Pulls with credentials are test/agent/pull-secrets.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { freePort } from "../harness/ports.ts";
import { pushOciLayout, startRegistry, type RegistryServer } from "../harness/registry.ts";
import { INDEX_HTML, condition, cstatus, startCluster, watchPod, wget, type Cluster } from "./cluster.ts";

const CREDENTIALS = { username: "skiff", password: "not-given-to-the-agent" };

let c: Cluster;
let open: RegistryServer;
let locked: RegistryServer;
let down: string;

beforeAll(async () => {
  let reg: RegistryServer[];
  [c, ...reg] = await Promise.all([
    // ImagePullBackOff: 2 s, then 4 s.
    startCluster({ agent: { imagePullBackoff: { initialMs: 2000, maxMs: 4000 } } }),
    startRegistry(),
    startRegistry({ basicAuth: CREDENTIALS }),
  ]);
  [open, locked] = reg;
  // The image exists in both registries: what fails is the tag asked for, or the credentials.
  await Promise.all([
    pushOciLayout(c.image.layoutDir, open.host, "team/busybox:v1"),
    pushOciLayout(c.image.layoutDir, locked.host, "team/busybox:v1", CREDENTIALS),
  ]);
  down = `127.0.0.1:${await freePort()}`; // nothing listens there
}, 120_000);

afterAll(async () => {
  await c?.stop();
  await open?.stop();
  await locked?.stop();
}, 120_000);

type Waiting = { reason: string; message: string };

/** The container's waiting states in the order the agent wrote them, repeats folded. */
function waitingStates(versions: Pod[]): Waiting[] {
  const out: Waiting[] = [];
  for (const p of versions) {
    const w = cstatus(p)?.state?.waiting;
    const prev = out.at(-1);
    if (w && (prev?.reason !== w.reason || prev.message !== w.message)) out.push({ reason: w.reason, message: w.message });
  }
  return out;
}

/** ErrImagePull with `pattern` in the registry's message, then ImagePullBackOff, then a retry that fails again. */
async function expectPullFailure(name: string, image: string, pattern: RegExp) {
  const pulls = (v: Pod[]) => waitingStates(v).filter((w) => w.reason === "ErrImagePull").length;
  const versions = await watchPod(c, name, () => c.createPod(name, { containers: [{ name: "app", image }] }), (v) => pulls(v) >= 2);
  const seen = waitingStates(versions).filter((w) => w.reason !== "ContainerCreating");
  expect(seen.map((w) => w.reason)).toEqual(["ErrImagePull", "ImagePullBackOff", "ErrImagePull"]);
  const pullError = seen[0].message;
  expect(pullError).toMatch(pattern);
  expect(pullError).toContain(image);
  expect(seen[1].message).toBe(`Back-off pulling image "${image}": ${pullError}`);
  expect(seen[2].message).toBe(pullError);
  const pod = versions.at(-1)!;
  expect(pod.status!.phase).toBe("Pending");
  expect(condition(pod, "Ready")).toBe("False");
  expect(cstatus(pod)!.restartCount).toBe(0);
}

describe("pods that cannot run", () => {
  it("an image missing from the registry: ErrImagePull with the registry's message, then ImagePullBackOff, retried", async () => {
    await expectPullFailure("missing", `${open.host}/team/busybox:no-such-tag`, /: manifest unknown: manifest unknown \(404\)$/);
  });

  it("a registry that refuses without credentials: ErrImagePull with its 401, then ImagePullBackOff", async () => {
    await expectPullFailure("unauthorized", `${locked.host}/team/busybox:v1`, /: unauthorized: authentication required.*\(401\)$/);
  });

  it("a registry that is down: ErrImagePull saying the connection was refused, then ImagePullBackOff", async () => {
    await expectPullFailure("down", `${down}/team/busybox:v1`, /: cannot reach http:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/);
  });

  it("a command missing from the image: CreateContainerError with runc's message", async () => {
    await c.createPod("nocmd", {
      containers: [
        { name: "abs", command: ["/no/such/binary"] },
        { name: "path", command: ["no-such-command"] },
      ],
    });
    const failed = (p: Pod, name: string) => cstatus(p, name)?.state?.waiting?.reason === "CreateContainerError";
    const p = await c.waitForPod("nocmd", "CreateContainerError for both", (p) => failed(p, "abs") && failed(p, "path"));
    expect(cstatus(p, "abs")!.state!.waiting!.message).toMatch(
      /^create container abs of pod default\/nocmd: task: .*exec: "\/no\/such\/binary": stat \/no\/such\/binary: no such file or directory/,
    );
    expect(cstatus(p, "path")!.state!.waiting!.message).toMatch(
      /^create container path of pod default\/nocmd: task: .*exec: "no-such-command": executable file not found in \$PATH/,
    );
    expect(p.status!.phase).toBe("Pending");
    expect([cstatus(p, "abs")!.restartCount, cstatus(p, "path")!.restartCount]).toEqual([0, 0]);
    // Nothing half-made is left in the runtime for them.
    expect(await c.containersOf(p.metadata!.uid)).toEqual([]);
  });

  it("keeps running and serving the node's other pods meanwhile", async () => {
    await c.createPod("healthy", { containers: [{ name: "web" }] });
    const p = await c.waitForPod("healthy", "Running", (p) => p.status?.phase === "Running" && condition(p, "Ready") === "True");
    expect(await wget(`http://${p.status!.podIp}/`)).toBe(INDEX_HTML);

    // The broken pods are still there, still failing the same way (their workers go on retrying).
    for (const [name, reasons] of [
      ["missing", ["ErrImagePull", "ImagePullBackOff"]],
      ["unauthorized", ["ErrImagePull", "ImagePullBackOff"]],
      ["down", ["ErrImagePull", "ImagePullBackOff"]],
      ["nocmd", ["CreateContainerError"]],
    ] as const) {
      const q = await c.pods.get("default", name);
      expect(q.status!.phase, name).toBe("Pending");
      expect(reasons, name).toContain(q.status!.containerStatuses[0].state!.waiting!.reason);
    }
    const node = await c.cp.client<Node>("Node").get("", c.nodeName);
    expect(node.status!.conditions.find((x) => x.type === "Ready")!.status).toBe("True");
  });
});
