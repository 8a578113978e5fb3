// Pulls through a real agent on real parts: etcd + apiserver, containerd + runc, the CNI bridge
// network, and Debian's docker-registry — one with htpasswd Basic auth and one anonymous, the
// busybox-static image pushed to both with skopeo. The pod's imagePullSecrets are Secrets read
// through the API; every failure shows the registry's (or the network's) own words in the
// container's waiting state, and the agent carries on. The node comes from ./cluster.ts: names and
// the pod CIDR are unique to this run; everything is removed afterwards, a crashed run's leftovers
// first.
import { create } from "@bufbuild/protobuf";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SecretSchema, type Secret } from "../../gen/skiff/v1alpha1/config_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { cstatus, testPod } from "../../internal/agent/testing.ts";
import type { ResourceClient } from "../../internal/client/resource-client.ts";
import { buildBusyboxImage } from "../harness/images.ts";
import { freePort } from "../harness/ports.ts";
import { pushOciLayout, startRegistry, type RegistryServer } from "../harness/registry.ts";
import { startCluster, type Cluster } from "./cluster.ts";

const CREDS = { username: "skiff", password: "s3cret-pass" };

let c: Cluster;
let privateReg: RegistryServer;
let publicReg: RegistryServer;
let secrets: ResourceClient<Secret>;
let downHost: string;

beforeAll(async () => {
  [c, privateReg, publicReg] = await Promise.all([
    startCluster({ agent: { resyncMs: 300, imagePullBackoff: { initialMs: 3000, maxMs: 5000 } } }),
    startRegistry({ basicAuth: CREDS }),
    startRegistry(),
  ]);
  downHost = `127.0.0.1:${await freePort()}`; // nothing listens there
  // Not the node's image (imported already): another page, so pulls fetch its config and top layer.
  const image = await buildBusyboxImage(join(c.dir, "pushed"), { name: "skiff.test/busybox", tag: "v1" });
  await pushOciLayout(image.layoutDir, privateReg.host, "team/busybox:v1", CREDS);
  await pushOciLayout(image.layoutDir, publicReg.host, "busybox:v1");
  secrets = c.cp.client<Secret>("Secret");
}, 180_000);

afterAll(async () => {
  await Promise.all([c?.stop(), privateReg?.stop(), publicReg?.stop()]);
}, 120_000);

/** A pod on the test node that pulls `image` every time it starts (no image cached in between). */
function pullingPod(podName: string, image: string, pullSecrets: string[] = []): Pod {
  return testPod(podName, {
    nodeName: c.nodeName,
    imagePullSecrets: pullSecrets.map((n) => ({ name: n })) as any,
    containers: [{ name: "app", image, imagePullPolicy: "Always", command: ["sleep", "3600"] }],
  });
}

function dockerConfigSecret(secretName: string, auths: Record<string, unknown>): Secret {
  return create(SecretSchema, {
    metadata: { name: secretName, namespace: "default" },
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": Buffer.from(JSON.stringify({ auths })) },
  });
}

const waiting = (p: Pod) => cstatus(p)?.state?.waiting;

const waitForPod = (podName: string, what: string, pred: (p: Pod) => boolean) => c.waitForPod(podName, what, pred, 60_000);

describe("image pulls with imagePullSecrets", () => {
  it("without a secret: ErrImagePull, then ImagePullBackOff, with the registry's message", async () => {
    const image = `${privateReg.host}/team/busybox:v1`;
    await c.pods.create(pullingPod("nosecret", image));
    let p = await waitForPod("nosecret", "ErrImagePull", (p) => waiting(p)?.reason === "ErrImagePull");
    expect(waiting(p)!.message).toBe(`pull ${image}: unauthorized: authentication required (401)`);
    expect(p.status!.phase).toBe("Pending");
    p = await waitForPod("nosecret", "ImagePullBackOff", (p) => waiting(p)?.reason === "ImagePullBackOff");
    expect(waiting(p)!.message).toBe(`Back-off pulling image "${image}": pull ${image}: unauthorized: authentication required (401)`);
  });

  it("with a secret that is missing: pulls anonymously, and fails the same way", async () => {
    const image = `${privateReg.host}/team/busybox:v1`;
    await c.pods.create(pullingPod("missing", image, ["not-there"]));
    const p = await waitForPod("missing", "ErrImagePull", (p) => waiting(p)?.reason === "ErrImagePull");
    expect(waiting(p)!.message).toContain("unauthorized: authentication required");
  });

  it("with wrong credentials: ErrImagePull with the registry's message", async () => {
    await secrets.create(dockerConfigSecret("wrongcred", { [privateReg.host]: { username: CREDS.username, password: "wrong" } }));
    await c.pods.create(pullingPod("wrongcred", `${privateReg.host}/team/busybox:v1`, ["wrongcred"]));
    const p = await waitForPod("wrongcred", "ErrImagePull", (p) => waiting(p)?.reason === "ErrImagePull");
    expect(waiting(p)!.message).toContain("unauthorized: authentication required (401)");
  });

  it("with a correct dockerconfigjson secret (auth field, key with scheme): Running", async () => {
    const auth = Buffer.from(`${CREDS.username}:${CREDS.password}`).toString("base64");
    await secrets.create(dockerConfigSecret("regcred", { [`http://${privateReg.host}/`]: { auth } }));
    await c.pods.create(pullingPod("withsecret", `${privateReg.host}/team/busybox:v1`, ["regcred"]));
    const p = await waitForPod("withsecret", "Running", (p) => p.status?.phase === "Running");
    expect(cstatus(p)!.imageId).toMatch(/^sha256:/);
  });

  it("with a dockercfg secret (username and password, key without scheme): Running", async () => {
    await secrets.create(create(SecretSchema, {
      metadata: { name: "oldcfg", namespace: "default" },
      type: "kubernetes.io/dockercfg",
      data: { ".dockercfg": Buffer.from(JSON.stringify({ [privateReg.host]: CREDS })) },
    }));
    await c.pods.create(pullingPod("dockercfg", `${privateReg.host}/team/busybox:v1`, ["oldcfg"]));
    await waitForPod("dockercfg", "Running", (p) => p.status?.phase === "Running");
  });

  it("from an anonymous registry: Running", async () => {
    await c.pods.create(pullingPod("anon", `${publicReg.host}/busybox:v1`));
    await waitForPod("anon", "Running", (p) => p.status?.phase === "Running");
  });

  it("an image that does not exist: ErrImagePull with manifest unknown", async () => {
    const image = `${publicReg.host}/busybox:nope`;
    await c.pods.create(pullingPod("noimage", image));
    const p = await waitForPod("noimage", "ErrImagePull", (p) => waiting(p)?.reason === "ErrImagePull");
    expect(waiting(p)!.message).toBe(`pull ${image}: manifest unknown: manifest unknown (404)`);
  });

  it("a registry that is down: ErrImagePull saying it cannot reach it", async () => {
    const image = `${downHost}/busybox:v1`;
    await c.pods.create(pullingPod("down", image));
    const p = await waitForPod("down", "ErrImagePull", (p) => waiting(p)?.reason === "ErrImagePull");
    expect(waiting(p)!.message).toMatch(new RegExp(`^pull ${image}: cannot reach http://${downHost}: .*ECONNREFUSED`));
  });

  it("the agent carried on through all of it: a new pod still starts, the failing ones keep being reported", async () => {
    await c.pods.create(pullingPod("after", `${publicReg.host}/busybox:v1`));
    await waitForPod("after", "Running", (p) => p.status?.phase === "Running");
    const stuck = await c.pods.get("default", "nosecret");
    expect(["ErrImagePull", "ImagePullBackOff"]).toContain(waiting(stuck)?.reason);
  });
});
