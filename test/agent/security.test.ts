// securityContext on real containerd + runc (cluster.ts), seen from inside the container as a user
// would check it (`id`, /proc/self/status, touching the rootfs, a blocked system call), and Pod
// Security admission refusing what a namespace's level forbids.
import { mkdirSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { NamespaceSchema, type Namespace } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { DEFAULT_CAPABILITIES } from "../../internal/runtime/containerd/spec.ts";
import { capabilitiesOfMask, runtimeCapabilities } from "../../internal/runtime/containerd/security-spec.ts";
import { buildBusyboxImage } from "../harness/images.ts";
import { cstatus, startCluster, watchPod, type Cluster, type ContainerInit, type PodInit } from "./cluster.ts";

let c: Cluster;

beforeAll(async () => {
  c = await startCluster();
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

/** Runs `script` once (restartPolicy Never) and returns what it printed. */
async function output(name: string, script: string, container: ContainerInit = {}, pod: PodInit = {}): Promise<string> {
  await c.createPod(name, { restartPolicy: "Never", ...pod, containers: [{ name: "app", command: ["sh", "-c", script], ...container }] });
  await c.waitForPod(name, "finished", (p) => p.status?.phase === "Succeeded" || p.status?.phase === "Failed", 60_000);
  return c.logs(name);
}

/** Whether /proc/keys is masked (/dev/null mounted over it) in the container. */
const MASKED = "grep -q ' /proc/keys ' /proc/self/mountinfo && echo keys-masked || echo keys-unmasked";

/** The capabilities named by the CapEff line of /proc/self/status in `out`. */
function effectiveCaps(out: string): string[] {
  const hex = /CapEff:\s*([0-9a-f]+)/.exec(out)?.[1];
  if (!hex) throw new Error(`no CapEff in ${JSON.stringify(out)}`);
  return capabilitiesOfMask(hex).sort();
}

describe("securityContext on containerd", () => {
  it("runs as the container's runAsUser (over the pod's), with supplemental and fsGroup groups, on a read-only rootfs; the emptyDir belongs to fsGroup", async () => {
    const out = await output(
      "identity",
      "id -u; id -g; id -G; touch /probe 2>&1; touch /data/f && /bin/busybox stat -c 'group=%g' /data/f",
      { securityContext: { runAsUser: 1000n, runAsNonRoot: true, readOnlyRootFilesystem: true } as any, volumeMounts: [{ name: "data", mountPath: "/data" } as any] },
      { securityContext: { runAsUser: 2000n, runAsGroup: 3000n, fsGroup: 4000n, supplementalGroups: [5000n] } as any, volumes: [{ name: "data", emptyDir: {} } as any] },
    );
    const [uid, gid, groups, touchRoot, fileGroup] = out.trim().split("\n");
    expect([uid, gid]).toEqual(["1000", "3000"]);
    expect([...new Set(groups.split(" "))].sort()).toEqual(["3000", "4000", "5000"]);
    expect(touchRoot).toMatch(/Read-only file system/);
    expect(fileGroup).toBe("group=4000");
  });

  it("drop ALL leaves no effective capability", async () => {
    const out = await output("drop-all", `grep CapEff /proc/self/status; ${MASKED}`, { securityContext: { capabilities: { drop: ["ALL"] } } as any });
    expect(out).toMatch(/CapEff:\s*0000000000000000/);
    expect(out).toContain("keys-masked");
  });

  it("adds and drops single capabilities on the default set", async () => {
    const out = await output("add-drop", "grep CapEff /proc/self/status", { securityContext: { capabilities: { add: ["NET_ADMIN"], drop: ["CAP_CHOWN"] } } as any });
    const expected = [...DEFAULT_CAPABILITIES.filter((x) => x !== "CAP_CHOWN"), "CAP_NET_ADMIN"].sort();
    expect(effectiveCaps(out)).toEqual(expected);
  });

  it("a privileged container holds every capability the node can give and sees /proc unmasked", async () => {
    const out = await output("privileged", `grep CapEff /proc/self/status; ${MASKED}`, { securityContext: { privileged: true } as any });
    expect(effectiveCaps(out)).toEqual(runtimeCapabilities().sort());
    expect(out).toContain("keys-unmasked");
  });

  it("RuntimeDefault seccomp refuses unshare but lets ordinary commands work; Unconfined allows it", async () => {
    const script = "echo hello; id -u; /bin/busybox unshare -U true 2>&1; echo unshare=$?";
    const confined = await output("seccomp-default", script, { securityContext: { seccompProfile: { type: "RuntimeDefault" } } as any });
    expect(confined).toMatch(/^hello\n0\n/);
    expect(confined).toMatch(/Operation not permitted/);
    expect(confined).toMatch(/unshare=1/);
    const unconfined = await output("seccomp-unconfined", script, {}, { securityContext: { seccompProfile: { type: "Unconfined" } } as any });
    expect(unconfined).toMatch(/unshare=0/);
  });

  it("a Localhost profile from the node's seccomp profile root is applied; a missing one is CreateContainerError", async () => {
    // Allows everything but mkdir/mkdirat, which fail with EACCES (13).
    mkdirSync(join(c.rootDir, "seccomp", "profiles"), { recursive: true });
    writeFileSync(join(c.rootDir, "seccomp", "profiles", "no-mkdir.json"), JSON.stringify({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 13 }],
    }));
    const localhost = (file: string) => ({ securityContext: { seccompProfile: { type: "Localhost", localhostProfile: file } } as any });
    const out = await output("seccomp-localhost", "mkdir /tmp/x 2>&1; echo mkdir=$?; touch /tmp/y && echo touched", localhost("profiles/no-mkdir.json"));
    expect(out).toMatch(/Permission denied\nmkdir=1\ntouched/);

    const versions = await watchPod(c, "seccomp-missing", () => c.createPod("seccomp-missing", { containers: [{ name: "app", ...localhost("profiles/absent.json") }] }), (v) =>
      v.some((p) => cstatus(p)?.state?.waiting?.reason === "CreateContainerError"),
    );
    const waiting = versions.map((p) => cstatus(p)?.state?.waiting).find((w) => w?.reason === "CreateContainerError");
    expect(waiting?.message).toMatch(/cannot load seccomp profile .*absent\.json.*ENOENT/);
  });

  it("hostPID shares the node's process table and hostIPC its IPC namespace; a pod without them has its own", async () => {
    const script = `test -d /proc/${process.pid} && echo sees-node || echo own-pids; /bin/busybox readlink /proc/self/ns/ipc`;
    const nodeIpc = readlinkSync("/proc/self/ns/ipc");
    expect(await output("host-pid", script, {}, { hostPid: true })).toMatch(/^sees-node\nipc:\[\d+\]\n$/);
    expect(await output("host-ipc", script, {}, { hostIpc: true })).toBe(`own-pids\n${nodeIpc}\n`);
    const own = await output("own-ns", script);
    expect(own).toMatch(/^own-pids\nipc:\[\d+\]\n$/);
    expect(own).not.toContain(nodeIpc);
  });

  it("an image's USER name runs as its uid from the image's /etc/passwd; runAsNonRoot refuses a name, as Kubernetes does", async () => {
    const image = await buildBusyboxImage(join(c.dir, "image-nobody"), { name: "skiff.test/nobody", tag: "v1", user: "nobody" });
    await c.runtime.importImage(image.tarPath);
    const named = { image: image.ref, imagePullPolicy: "Never" };
    expect(await output("named-user", "id -u; id -g", named)).toBe("65534\n65534\n");
    expect(await output("named-user-override", "id -u; id -g", { ...named, securityContext: { runAsUser: 0n } as any })).toBe("0\n0\n");

    const versions = await watchPod(c, "named-nonroot", () => c.createPod("named-nonroot", { containers: [{ name: "app", ...named, securityContext: { runAsNonRoot: true } as any }] }), (v) =>
      v.some((p) => cstatus(p)?.state?.waiting?.reason === "CreateContainerConfigError"),
    );
    const waiting = versions.map((p) => cstatus(p)?.state?.waiting).find((w) => w?.reason === "CreateContainerConfigError");
    expect(waiting?.message).toMatch(/image has non-numeric user \(nobody\), cannot verify user is non-root/);
  });

  it("runAsNonRoot with an image that runs as root is refused with CreateContainerConfigError", async () => {
    const versions = await watchPod(c, "nonroot", () => c.createPod("nonroot", { containers: [{ name: "app", securityContext: { runAsNonRoot: true } as any }] }), (v) =>
      v.some((p) => cstatus(p)?.state?.waiting?.reason === "CreateContainerConfigError"),
    );
    const waiting = versions.map((p) => cstatus(p)?.state?.waiting).find((w) => w?.reason === "CreateContainerConfigError");
    expect(waiting?.message).toMatch(/runAsNonRoot and image will run as root/);
    expect(await c.containersOf(versions.at(-1)!.metadata!.uid)).toEqual([]);
  });
});

describe("Pod Security admission", () => {
  const ns = "restricted-ns";

  beforeAll(async () => {
    await c.cp.client<Namespace>("Namespace").create(
      create(NamespaceSchema, { metadata: { name: ns, labels: { "pod-security.kubernetes.io/enforce": "restricted" } } }),
    );
  });

  const inNamespace = (name: string, spec: PodInit) => {
    const pod = c.pod(name, spec);
    pod.metadata!.namespace = ns;
    return c.pods.create(pod);
  };

  it("refuses a privileged pod in a restricted namespace, listing every violation", async () => {
    const err = await inNamespace("bad", { hostPid: true, containers: [{ name: "app", securityContext: { privileged: true } as any, ports: [{ containerPort: 80, hostPort: 8080 } as any] }] }).then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.PermissionDenied);
    expect(err?.rawMessage).toBe(
      'pods "bad" is forbidden: violates PodSecurity "restricted:latest": ' +
        "host namespaces (hostPID=true), " +
        'privileged (container "app" must not set securityContext.privileged=true), ' +
        'hostPort (container "app" uses hostPort 8080), ' +
        'allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), ' +
        'runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true), ' +
        'seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"), ' +
        'unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"])',
    );
    await expect(c.pods.get(ns, "bad")).rejects.toThrow(/not found/);
  });

  it("refuses a namespace whose pod-security label names no level", async () => {
    const bad = create(NamespaceSchema, { metadata: { name: "typo-ns", labels: { "pod-security.kubernetes.io/enforce": "restrictd" } } });
    const err = await c.cp.client<Namespace>("Namespace").create(bad).then(() => undefined, (e) => ConnectError.from(e));
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toContain('metadata.labels[pod-security.kubernetes.io/enforce]: "restrictd" must be one of privileged, baseline, restricted');
  });

  it("admits a compliant pod, which runs as uid 1000 with no_new_privs and the seccomp filter", async () => {
    await inNamespace("good", {
      restartPolicy: "Never",
      securityContext: { runAsNonRoot: true, runAsUser: 1000n, seccompProfile: { type: "RuntimeDefault" } } as any,
      containers: [{
        name: "app",
        command: ["sh", "-c", 'test "$(id -u)" = 1000 && grep -q "NoNewPrivs:.1" /proc/self/status && grep -q "Seccomp:.2" /proc/self/status'],
        securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } } as any,
      }],
    });
    const p = await waitForIn(ns, "good", (x) => x.status?.phase === "Succeeded" || x.status?.phase === "Failed");
    expect([p.status?.phase, cstatus(p)?.state?.terminated?.exitCode]).toEqual(["Succeeded", 0]);
  });
});

describe("agent --seccomp-default", () => {
  it("gives a container that names no profile RuntimeDefault instead of Unconfined", async () => {
    const script = "grep Seccomp: /proc/self/status; /bin/busybox unshare -U true 2>&1; echo unshare=$?";
    const before = await output("no-profile-before", script);
    expect(before).toMatch(/Seccomp:\s*0\n(.*\n)?unshare=0/);
    await c.restartAgent({ seccompDefault: true });
    const after = await output("no-profile-after", script);
    expect(after).toMatch(/Seccomp:\s*2\n.*Operation not permitted\nunshare=1/);
  });
});

async function waitForIn(ns: string, name: string, pred: (p: any) => boolean) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const p = await c.pods.get(ns, name);
    if (pred(p)) return p;
    if (Date.now() > deadline) throw new Error(`pod ${ns}/${name}: still ${p.status?.phase}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
