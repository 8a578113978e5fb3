import { describe, expect, it } from "vitest";
import { ContainerConfigRefusedError, type ContainerConfig, type ContainerSecurity } from "../runtime.ts";
import { capabilitiesOfMask, capabilityName } from "./security-spec.ts";
import { buildOciSpec, DEFAULT_CAPABILITIES, type ImageConfig } from "./spec.ts";

const IMAGE: ImageConfig = { entrypoint: ["/bin/sh"], cmd: [], env: [], workingDir: "", user: "" };

function sec(over: Partial<ContainerSecurity> = {}): ContainerSecurity {
  return {
    runAsNonRoot: false,
    supplementalGroups: [],
    readOnlyRootFilesystem: false,
    privileged: false,
    allowPrivilegeEscalation: true,
    capabilities: { add: [], drop: [] },
    seccomp: { type: "Unconfined" },
    hostPid: false,
    hostIpc: false,
    ...over,
  };
}

const HOST = { capabilities: () => ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"], devices: () => [{ path: "/dev/loop0", type: "b" as const, major: 7, minor: 0, fileMode: 0o660, uid: 0, gid: 6 }] };

function spec(security: ContainerSecurity, user = ""): any {
  const cfg = {
    podUid: "u", podName: "p", podNamespace: "default", containerName: "app", attempt: 0, image: "busybox", command: [], args: [], env: [],
    workingDir: "", mounts: [], resources: {}, netnsPath: "/var/run/netns/p", hostname: "p", logPath: "/tmp/x.log", security,
  } satisfies ContainerConfig;
  return JSON.parse(JSON.stringify(buildOciSpec(cfg, { ...IMAGE, user }, { cgroupsParent: "/skiff", containerId: "c1", securityHost: HOST })));
}

describe("securityContext in the OCI spec", () => {
  it("runs as runAsUser/runAsGroup, else the image's numeric USER, with supplemental groups", () => {
    expect(spec(sec({ runAsUser: 1000, runAsGroup: 2000, supplementalGroups: [3000, 3000, 4000] })).process.user).toEqual({ uid: 1000, gid: 2000, additionalGids: [3000, 4000] });
    expect(spec(sec(), "1234:55").process.user).toEqual({ uid: 1234, gid: 55 });
    expect(spec(sec({ runAsUser: 7 }), "1234:55").process.user).toEqual({ uid: 7, gid: 55 });
  });

  it("refuses runAsNonRoot when the uid is 0 or a name, and accepts a numeric non-root one", () => {
    expect(() => spec(sec({ runAsNonRoot: true }))).toThrow(ContainerConfigRefusedError);
    expect(() => spec(sec({ runAsNonRoot: true }))).toThrow(/image will run as root/);
    expect(() => spec(sec({ runAsNonRoot: true, runAsUser: 0 }), "1000")).toThrow(/runAsUser is 0/);
    expect(() => spec(sec({ runAsNonRoot: true }), "nobody")).toThrow(/non-numeric user \(nobody\)/);
    expect(spec(sec({ runAsNonRoot: true }), "1000").process.user.uid).toBe(1000);
    expect(spec(sec({ runAsNonRoot: true, runAsUser: 1000 }), "nobody").process.user.uid).toBe(1000);
  });

  it("sets no_new_privs only when privilege escalation is turned off (Kubernetes' default allows it)", () => {
    expect(spec(sec()).process.noNewPrivileges).toBe(false);
    expect(spec(sec({ allowPrivilegeEscalation: false })).process.noNewPrivileges).toBe(true);
  });

  it("makes the rootfs read-only on request", () => {
    expect(spec(sec()).root.readonly).toBeUndefined();
    expect(spec(sec({ readOnlyRootFilesystem: true })).root.readonly).toBe(true);
  });

  it("adds and drops capabilities on the default set in containerd's order", () => {
    const caps = (c: ContainerSecurity["capabilities"]) => spec(sec({ capabilities: c })).process.capabilities;
    expect(caps({ add: [], drop: [] }).effective).toEqual(DEFAULT_CAPABILITIES);
    expect(caps({ add: [], drop: ["ALL"] })).toEqual({ bounding: [], effective: [], permitted: [] });
    expect(caps({ add: ["NET_BIND_SERVICE"], drop: ["ALL"] }).effective).toEqual(["CAP_NET_BIND_SERVICE"]);
    expect(caps({ add: ["net_admin"], drop: ["CHOWN"] }).bounding).toEqual([...DEFAULT_CAPABILITIES.filter((c) => c !== "CAP_CHOWN"), "CAP_NET_ADMIN"]);
    expect(caps({ add: ["ALL"], drop: ["SYS_ADMIN"] }).permitted).toEqual(["CAP_CHOWN", "CAP_NET_ADMIN"]);
  });

  it("privileged: every capability the runtime holds, host devices, nothing masked, writable /sys, no seccomp", () => {
    const s = spec(sec({ privileged: true, seccomp: { type: "RuntimeDefault" } }));
    expect(s.process.capabilities.effective).toEqual(HOST.capabilities());
    expect(s.process.noNewPrivileges).toBe(false);
    expect(s.linux.maskedPaths).toEqual([]);
    expect(s.linux.readonlyPaths).toEqual([]);
    expect(s.linux.devices).toEqual(HOST.devices());
    expect(s.linux.resources.devices).toEqual([{ allow: true, access: "rwm" }]);
    expect(s.mounts.find((m: any) => m.destination === "/sys").options).not.toContain("ro");
    expect(s.linux.seccomp).toBeUndefined();
  });

  it("hostPID and hostIPC leave out the pid and ipc namespaces; hostIPC shares the node's /dev/shm", () => {
    const types = (s: any) => s.linux.namespaces.map((n: any) => n.type);
    expect(types(spec(sec()))).toEqual(["pid", "ipc", "uts", "mount", "network"]);
    expect(types(spec(sec({ hostPid: true })))).toEqual(["ipc", "uts", "mount", "network"]);
    const ipc = spec(sec({ hostIpc: true }));
    expect(types(ipc)).toEqual(["pid", "uts", "mount", "network"]);
    expect(ipc.mounts.find((m: any) => m.destination === "/dev/shm")).toMatchObject({ type: "bind", source: "/dev/shm" });
  });

  it("RuntimeDefault: an allowlist failing other calls with EPERM; namespace-creating clone only with CAP_SYS_ADMIN", () => {
    const filter = spec(sec({ seccomp: { type: "RuntimeDefault" } })).linux.seccomp;
    expect(filter).toMatchObject({ defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 1 });
    const allowed = filter.syscalls.filter((r: any) => r.action === "SCMP_ACT_ALLOW" && !r.args).flatMap((r: any) => r.names);
    expect(allowed).toEqual(expect.arrayContaining(["read", "write", "execve", "openat", "socket"]));
    for (const name of ["unshare", "mount", "setns", "ptrace", "reboot", "init_module"]) expect(allowed).not.toContain(name);
    expect(filter.syscalls.find((r: any) => r.names.includes("clone3"))).toMatchObject({ action: "SCMP_ACT_ERRNO", errnoRet: 38 });
    expect(filter.syscalls.find((r: any) => r.names.includes("clone")).args).toHaveLength(1);

    const admin = spec(sec({ seccomp: { type: "RuntimeDefault" }, capabilities: { add: ["SYS_ADMIN"], drop: [] } })).linux.seccomp;
    const adminAllowed = admin.syscalls.filter((r: any) => r.action === "SCMP_ACT_ALLOW" && !r.args).flatMap((r: any) => r.names);
    expect(adminAllowed).toEqual(expect.arrayContaining(["unshare", "mount", "setns", "clone"]));
  });

  it("Localhost: the profile file is read; a missing or malformed one is an error naming it", () => {
    expect(() => spec(sec({ seccomp: { type: "Localhost", path: "/nonexistent/profile.json" } }))).toThrow(/cannot load seccomp profile "\/nonexistent\/profile.json": ENOENT/);
  });
});

describe("capability names", () => {
  it("reads /proc status masks and normalises names", () => {
    expect(capabilitiesOfMask("0000000000003001")).toEqual(["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_NET_RAW"]);
    expect(capabilityName("net_admin")).toBe("CAP_NET_ADMIN");
    expect(capabilityName("CAP_KILL")).toBe("CAP_KILL");
    expect(capabilityName("all")).toBe("ALL");
  });
});
