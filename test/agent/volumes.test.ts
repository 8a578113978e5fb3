// ConfigMap, Secret, downwardAPI and projected volumes on one real node (cluster.ts: etcd,
// apiserver, containerd + runc, CNI): the files a container reads and their modes; a ConfigMap
// update reaching the running pod while a reader looping over the file never sees half of it (and
// not a subPath mount of it);
// Secrets on tmpfs; a missing ConfigMap holding the pod in ContainerCreating (FailedMount) until it
// exists; and the tmpfs mounts gone with the pod.
import { create } from "@bufbuild/protobuf";
import { decodeJwt } from "jose";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigMapSchema, SecretSchema, type ConfigMap, type Secret } from "../../gen/skiff/v1alpha1/config_pb.js";
import type { Event } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { cstatus, startCluster, waitFor, type Cluster } from "./cluster.ts";

let c: Cluster;

beforeAll(async () => {
  c = await startCluster();
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

const configMaps = () => c.cp.client<ConfigMap>("ConfigMap");
const secrets = () => c.cp.client<Secret>("Secret");
const SLEEP = ["sleep", "3600"];

/** Runs a shell script in the pod's running container. */
async function sh(pod: string, script: string, container = "app"): Promise<string> {
  const p = await c.pods.get("default", pod);
  const running = (await c.containersOf(p.metadata!.uid, container)).filter((x) => x.state === "running").at(-1);
  if (!running) throw new Error(`pod ${pod}: container ${container} is not running`);
  const r = await c.runtime.exec(running.id, ["sh", "-c", script], 30_000);
  if (r.exitCode !== 0) throw new Error(`pod ${pod}: ${script}: exit ${r.exitCode}: ${r.stderr}`);
  return r.stdout;
}

const running = (name: string, timeoutMs = 60_000) => c.waitForPod(name, "Running", (p) => p.status?.phase === "Running", timeoutMs);

/** The file system type of the mount at `path` inside the container, from its mountinfo. */
async function fsType(pod: string, path: string): Promise<string> {
  const info = await sh(pod, "cat /proc/self/mountinfo");
  const line = info.split("\n").find((l) => l.split(" ")[4] === path);
  if (!line) throw new Error(`no mount at ${path} in pod ${pod}`);
  return line.split(" - ")[1].split(" ")[0];
}

/** Host mount points under the pod's directory. */
function hostMountsOf(uid: string): string[] {
  const dir = join(c.rootDir, "pods", uid);
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m) => m !== undefined && m.startsWith(`${dir}/`));
}

describe("configMap and secret volumes", () => {
  it("gives the container its ConfigMap and Secret files with the modes asked for, the Secret's on tmpfs; they go with the pod", async () => {
    await configMaps().create(create(ConfigMapSchema, { metadata: { name: "web", namespace: "default" }, data: { "app.conf": "port=8080\n", "other.txt": "x" } }));
    await secrets().create(create(SecretSchema, { metadata: { name: "creds", namespace: "default" }, data: { password: new TextEncoder().encode("hunter2") } }));
    const created = await c.createPod("files", {
      terminationGracePeriodSeconds: 1n, // sleep as PID 1 ignores SIGTERM
      containers: [
        {
          name: "app",
          command: SLEEP,
          volumeMounts: [
            { name: "cfg", mountPath: "/etc/cfg" },
            { name: "picked", mountPath: "/etc/picked" },
            { name: "secret", mountPath: "/etc/secret" },
          ] as any,
        },
      ],
      volumes: [
        { name: "cfg", configMap: { name: "web", defaultMode: 0o640 } },
        { name: "picked", configMap: { name: "web", items: [{ key: "app.conf", path: "conf/app.conf", mode: 0o600 }] } },
        { name: "secret", secret: { secretName: "creds", defaultMode: 0o400 } },
      ] as any,
    });
    await running("files");
    expect(await sh("files", "cat /etc/cfg/app.conf /etc/cfg/other.txt")).toBe("port=8080\nx");
    expect(await sh("files", "stat -L -c %a /etc/cfg/app.conf /etc/picked/conf/app.conf /etc/secret/password")).toBe("640\n600\n400\n");
    expect(await sh("files", "ls /etc/picked")).toBe("conf\n");
    expect(await sh("files", "cat /etc/secret/password")).toBe("hunter2");
    // Read-only in the container, as Kubernetes mounts these.
    await expect(sh("files", "echo no > /etc/cfg/new")).rejects.toThrow(/Read-only/i);
    expect(await fsType("files", "/etc/secret")).toBe("tmpfs");
    expect(await fsType("files", "/var/run/secrets/kubernetes.io/serviceaccount")).toBe("tmpfs");
    const uid = created.metadata!.uid;
    expect(hostMountsOf(uid).length).toBeGreaterThanOrEqual(2);

    await c.pods.delete("default", "files", { gracePeriodSeconds: 0n });
    await c.waitForGone("files", 60_000);
    // The agent tears the pod down once it sees it gone (grace 0 deletes the object at once).
    await waitFor("the pod's directory removed", async () => !existsSync(join(c.rootDir, "pods", uid)), 60_000);
    expect(hostMountsOf(uid)).toEqual([]);
  }, 120_000);

  it("changes the file in the running pod after the ConfigMap is updated, and a reader looping over it never sees half of it", async () => {
    const SIZE = 65536;
    await configMaps().create(create(ConfigMapSchema, { metadata: { name: "big", namespace: "default" }, data: { big: "A".repeat(SIZE) } }));
    // Every read must be the whole file of one version: SIZE bytes, all one letter.
    const reader = `
      n=0
      while [ ! -e /tmp/stop ]; do
        v=$(cat /etc/cfg/big)
        f=$(printf %s "$v" | head -c 1)
        if [ "\${#v}" != ${SIZE} ] || [ -n "$(printf %s "$v" | tr -d "$f")" ]; then echo "torn read: \${#v} bytes" >> /tmp/torn; fi
        n=$((n+1)); echo $n > /tmp/reads
      done
      sleep 3600`;
    await c.createPod("reader", {
      containers: [
        {
          name: "app",
          command: ["sh", "-c", reader],
          // The same key by subPath: it keeps the version the container started with (as in Kubernetes).
          volumeMounts: [{ name: "cfg", mountPath: "/etc/cfg" }, { name: "cfg", mountPath: "/pinned/big", subPath: "big" }] as any,
        },
      ],
      volumes: [{ name: "cfg", configMap: { name: "big" } }] as any,
    });
    await running("reader");
    await waitFor("the reader reading", async () => Number((await sh("reader", "cat /tmp/reads 2>/dev/null || echo 0")).trim()) > 0, 30_000);
    const cm = await configMaps().get("default", "big");
    cm.data = { big: "B".repeat(SIZE) };
    await configMaps().update(cm);
    await waitFor("the new content in the pod", async () => (await sh("reader", "head -c 1 /etc/cfg/big")) === "B", 90_000);
    const before = Number((await sh("reader", "cat /tmp/reads")).trim());
    await waitFor("more reads of the new version", async () => Number((await sh("reader", "cat /tmp/reads")).trim()) > before + 3, 30_000);
    await sh("reader", "touch /tmp/stop");
    expect(await sh("reader", "cat /tmp/torn 2>/dev/null || true")).toBe("");
    expect(await sh("reader", "head -c 1 /pinned/big; wc -c < /pinned/big")).toBe(`A${SIZE}\n`);
  }, 180_000);

  it("keeps the pod in ContainerCreating with a FailedMount event naming a missing ConfigMap, and starts it once it exists", async () => {
    await c.createPod("waits", {
      containers: [{ name: "app", command: SLEEP, volumeMounts: [{ name: "cfg", mountPath: "/etc/cfg" }] as any }],
      volumes: [{ name: "cfg", configMap: { name: "later" } }, { name: "opt", secret: { secretName: "absent", optional: true } }] as any,
    });
    const p = await c.waitForPod("waits", "ContainerCreating naming the ConfigMap", (p) => (cstatus(p)?.state?.waiting?.message ?? "").includes('configmap "later" not found'), 60_000);
    expect(cstatus(p)!.state!.waiting!.reason).toBe("ContainerCreating");
    expect(p.status!.phase).toBe("Pending");
    const event = await waitFor("a FailedMount event", async () =>
      (await c.cp.client<Event>("Event").list("default")).items.find((e) => e.involvedObject?.name === "waits" && e.reason === "FailedMount"),
    );
    expect(event.type).toBe("Warning");
    expect(event.message).toContain('MountVolume.SetUp failed for volume "cfg" : configmap "later" not found');
    expect(event.message).not.toContain("absent"); // optional: an empty volume, no failure

    await configMaps().create(create(ConfigMapSchema, { metadata: { name: "later", namespace: "default" }, data: { k: "here now" } }));
    await running("waits");
    expect(await sh("waits", "cat /etc/cfg/k")).toBe("here now");
  }, 120_000);
});

describe("downwardAPI and projected volumes", () => {
  it("writes the pod's labels, annotations, name and limits as files and env, and follows a label change", async () => {
    const spec = c.pod("downward", {
      containers: [
        {
          name: "app",
          command: SLEEP,
          resources: { limits: { memory: "32Mi", cpu: "500m" } } as any,
          env: [
            { name: "MY_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            { name: "MY_MEM", valueFrom: { resourceFieldRef: { resource: "limits.memory", divisor: "1Mi" } } },
          ] as any,
          volumeMounts: [{ name: "info", mountPath: "/etc/podinfo" }] as any,
        },
      ],
      volumes: [
        {
          name: "info",
          downwardApi: {
            items: [
              { path: "labels", fieldRef: { fieldPath: "metadata.labels" } },
              { path: "annotations", fieldRef: { fieldPath: "metadata.annotations" } },
              { path: "name", fieldRef: { fieldPath: "metadata.name" } },
              { path: "ns/namespace", fieldRef: { fieldPath: "metadata.namespace" } },
              { path: "cpu_limit_m", resourceFieldRef: { containerName: "app", resource: "limits.cpu", divisor: "1m" } },
              { path: "mem_limit", resourceFieldRef: { containerName: "app", resource: "limits.memory", divisor: "1Mi" } },
            ],
          },
        },
      ] as any,
    });
    spec.metadata!.labels = { app: "web", tier: "front" };
    spec.metadata!.annotations = { note: "hello" };
    await c.pods.create(spec);
    await running("downward");
    await waitFor("labels in the file", async () => (await sh("downward", "cat /etc/podinfo/labels")) === 'app="web"\ntier="front"', 30_000);
    expect(await sh("downward", "cat /etc/podinfo/annotations; echo; cat /etc/podinfo/name; echo; cat /etc/podinfo/ns/namespace")).toBe('note="hello"\ndownward\ndefault');
    expect(await sh("downward", "cat /etc/podinfo/cpu_limit_m; echo; cat /etc/podinfo/mem_limit")).toBe("500\n32");
    expect(await sh("downward", 'echo "$MY_NAME $MY_MEM"')).toBe("downward 32\n");

    const now = await c.pods.get("default", "downward");
    now.metadata!.labels = { app: "web", tier: "back" };
    await c.pods.update(now);
    await waitFor("the changed label in the file", async () => (await sh("downward", "cat /etc/podinfo/labels")) === 'app="web"\ntier="back"', 90_000);
  }, 120_000);

  it("projects a ConfigMap key, a Secret, pod fields and a ServiceAccount token with its audience into one directory on tmpfs", async () => {
    await configMaps().create(create(ConfigMapSchema, { metadata: { name: "proj-cm", namespace: "default" }, data: { a: "from the configmap" } }));
    await secrets().create(create(SecretSchema, { metadata: { name: "proj-secret", namespace: "default" }, data: { b: new TextEncoder().encode("from the secret") } }));
    await c.createPod("projected", {
      containers: [{ name: "app", command: SLEEP, volumeMounts: [{ name: "all", mountPath: "/projected" }] as any }],
      volumes: [
        {
          name: "all",
          projected: {
            defaultMode: 0o440,
            sources: [
              { configMap: { name: "proj-cm", items: [{ key: "a", path: "cm/a" }] } },
              { secret: { name: "proj-secret" } },
              { downwardApi: { items: [{ path: "podname", fieldRef: { fieldPath: "metadata.name" } }] } },
              { serviceAccountToken: { audience: "vault", expirationSeconds: 3600n, path: "token" } },
            ],
          },
        },
      ] as any,
    });
    const pod: Pod = await running("projected");
    expect(await sh("projected", "cat /projected/cm/a; echo; cat /projected/b; echo; cat /projected/podname")).toBe("from the configmap\nfrom the secret\nprojected");
    expect(await sh("projected", "stat -L -c %a /projected/b /projected/token")).toBe("440\n440\n");
    const claims = decodeJwt(await sh("projected", "cat /projected/token"));
    expect(claims.aud).toEqual(["vault"]);
    expect(claims.sub).toBe("system:serviceaccount:default:default");
    expect(JSON.stringify(claims)).toContain(pod.metadata!.uid); // bound to the pod
    expect(await fsType("projected", "/projected")).toBe("tmpfs");
  }, 120_000);
});
