import { describe, expect, it } from "vitest";
import type { ContainerConfig } from "../runtime.ts";
import { buildOciSpec, cgroupsPathFor, DEFAULT_PATH, mergeEnv, parseUser, resolveArgs, type ImageConfig } from "./spec.ts";

function config(over: Partial<ContainerConfig> = {}): ContainerConfig {
  return {
    podUid: "uid-1",
    podName: "web",
    podNamespace: "default",
    containerName: "app",
    attempt: 0,
    image: "busybox:v1",
    command: [],
    args: [],
    env: [],
    workingDir: "",
    mounts: [],
    resources: {},
    netnsPath: "/var/run/netns/pod-1",
    hostname: "web",
    logPath: "/tmp/x.log",
    ...over,
  };
}

const IMAGE: ImageConfig = {
  entrypoint: ["/bin/entry"],
  cmd: ["serve", "--port=80"],
  env: ["PATH=/bin", "MODE=image", "KEEP=1"],
  workingDir: "/srv",
  user: "1000:1000",
};

const OPTS = { cgroupsParent: "/skiff", containerId: "c1" };

function spec(over: Partial<ContainerConfig> = {}, image: ImageConfig = IMAGE, opts = {}): any {
  // Through JSON, as containerd receives it.
  return JSON.parse(JSON.stringify(buildOciSpec(config(over), image, { ...OPTS, ...opts })));
}

describe("command and args (Kubernetes rules)", () => {
  it("neither set: image entrypoint + cmd", () => {
    expect(spec().process.args).toEqual(["/bin/entry", "serve", "--port=80"]);
  });
  it("command only: replaces the entrypoint and drops the image cmd", () => {
    expect(spec({ command: ["/bin/sh", "-c", "echo hi"] }).process.args).toEqual(["/bin/sh", "-c", "echo hi"]);
  });
  it("args only: image entrypoint + args", () => {
    expect(spec({ args: ["other"] }).process.args).toEqual(["/bin/entry", "other"]);
  });
  it("both: command + args", () => {
    expect(spec({ command: ["/bin/echo"], args: ["a", "b"] }).process.args).toEqual(["/bin/echo", "a", "b"]);
  });
  it("args with an image without entrypoint run args alone", () => {
    expect(resolveArgs([], ["/bin/true"], { entrypoint: [], cmd: ["/bin/sh"] })).toEqual(["/bin/true"]);
  });
  it("nothing to run is an error naming the container", () => {
    expect(() => spec({}, { ...IMAGE, entrypoint: [], cmd: [] })).toThrow(/app: no command/);
  });
});

describe("env", () => {
  it("pod env overrides image env by name, keeping the image's order, then adds new names", () => {
    const env = spec({ env: [{ name: "MODE", value: "pod" }, { name: "NEW", value: "a=b" }] }).process.env;
    expect(env).toEqual(["PATH=/bin", "MODE=pod", "KEEP=1", "HOSTNAME=web", "NEW=a=b"]);
  });
  it("adds a default PATH when neither the image nor the pod has one", () => {
    expect(mergeEnv([], [{ name: "A", value: "1" }])).toEqual([DEFAULT_PATH, "A=1"]);
    expect(mergeEnv([], [{ name: "PATH", value: "/x" }])).toEqual(["PATH=/x"]);
  });
  it("the pod may override HOSTNAME", () => {
    expect(spec({ env: [{ name: "HOSTNAME", value: "h" }] }).process.env).toContain("HOSTNAME=h");
  });
});

describe("process", () => {
  it("cwd: pod workingDir, else the image's, else /", () => {
    expect(spec({ workingDir: "/data" }).process.cwd).toBe("/data");
    expect(spec().process.cwd).toBe("/srv");
    expect(spec({}, { ...IMAGE, workingDir: "" }).process.cwd).toBe("/");
  });
  it("user: numeric uid[:gid] from the image, names run as root", () => {
    expect(spec().process.user).toEqual({ uid: 1000, gid: 1000 });
    expect(parseUser("42")).toEqual({ uid: 42, gid: 0 });
    expect(parseUser("nobody")).toEqual({ uid: 0, gid: 0 });
    expect(parseUser("7:staff")).toEqual({ uid: 7, gid: 0 });
    expect(parseUser("")).toEqual({ uid: 0, gid: 0 });
  });
  it("terminal, noNewPrivileges, rlimits, capabilities", () => {
    const p = spec({ tty: true }).process;
    expect(p.terminal).toBe(true);
    expect(spec().process.terminal).toBe(false);
    expect(p.noNewPrivileges).toBe(true);
    expect(p.rlimits).toEqual([{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }]);
    expect(p.capabilities.bounding).toContain("CAP_NET_BIND_SERVICE");
    expect(p.capabilities.bounding).not.toContain("CAP_SYS_ADMIN");
    expect(p.capabilities.effective).toEqual(p.capabilities.bounding);
    expect(p.capabilities.permitted).toEqual(p.capabilities.bounding);
    expect(p.capabilities.inheritable).toBeUndefined();
  });
  it("root, hostname and version", () => {
    const s = spec();
    expect(s.ociVersion).toBe("1.0.2");
    expect(s.root).toEqual({ path: "rootfs" });
    expect(s.hostname).toBe("web");
  });
});

describe("mounts", () => {
  it("has the pseudo-filesystems, sysfs and cgroup read-only", () => {
    const byDest = new Map<string, any>(spec().mounts.map((m: any) => [m.destination, m]));
    expect([...byDest.keys()]).toEqual(["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]);
    expect(byDest.get("/sys").options).toContain("ro");
    expect(byDest.get("/sys/fs/cgroup").options).toContain("ro");
    expect(byDest.get("/dev").type).toBe("tmpfs");
  });
  it("pod mounts are rbind mounts after the defaults, ro when readOnly, and replace a default at the same path", () => {
    const mounts = spec({
      mounts: [
        { hostPath: "/var/lib/skiff/pods/u/hosts", containerPath: "/etc/hosts", readOnly: false },
        { hostPath: "/var/lib/skiff/pods/u/cfg", containerPath: "/config", readOnly: true },
        { hostPath: "/var/lib/skiff/pods/u/shm", containerPath: "/dev/shm", readOnly: false },
      ],
    }).mounts;
    expect(mounts.filter((m: any) => m.destination === "/dev/shm")).toHaveLength(1);
    expect(mounts.slice(-3)).toEqual([
      { destination: "/etc/hosts", type: "bind", source: "/var/lib/skiff/pods/u/hosts", options: ["rbind", "rprivate"] },
      { destination: "/config", type: "bind", source: "/var/lib/skiff/pods/u/cfg", options: ["rbind", "rprivate", "ro"] },
      { destination: "/dev/shm", type: "bind", source: "/var/lib/skiff/pods/u/shm", options: ["rbind", "rprivate"] },
    ]);
  });
});

describe("linux", () => {
  it("joins the pod's network namespace by path", () => {
    const ns = spec().linux.namespaces;
    expect(ns).toEqual([{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "network", path: "/var/run/netns/pod-1" }]);
  });
  it("host network: no network namespace entry", () => {
    const ns = spec({ netnsPath: "" }).linux.namespaces;
    expect(ns.map((n: any) => n.type)).toEqual(["pid", "ipc", "uts", "mount"]);
  });
  it("cgroupsPath is parent/containerId", () => {
    expect(spec().linux.cgroupsPath).toBe("/skiff/c1");
    expect(cgroupsPathFor("skiff/", "c2")).toBe("/skiff/c2");
    expect(cgroupsPathFor("/", "c3")).toBe("/c3");
  });
  it("masked and read-only paths", () => {
    const l = spec().linux;
    expect(l.maskedPaths).toContain("/proc/kcore");
    expect(l.maskedPaths).toContain("/sys/firmware");
    expect(l.readonlyPaths).toContain("/proc/sys");
  });
  it("resources: cpu shares/quota/period, memory with swap = limit, pids", () => {
    const r = spec(
      { resources: { cpuShares: 512, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, memoryLimitBytes: 64 << 20 } },
      IMAGE,
      { pidsLimit: 256 },
    ).linux.resources;
    expect(r.cpu).toEqual({ shares: 512, quota: 50_000, period: 100_000 });
    expect(r.memory).toEqual({ limit: 64 << 20, swap: 64 << 20 });
    expect(r.pids).toEqual({ limit: 256 });
  });
  it("a quota without a period gets the 100ms default; no limits → no cpu/memory/pids sections", () => {
    expect(spec({ resources: { cpuQuotaUs: 20_000 } }).linux.resources.cpu).toEqual({ quota: 20_000, period: 100_000 });
    const r = spec().linux.resources;
    expect(r.cpu).toBeUndefined();
    expect(r.memory).toBeUndefined();
    expect(r.pids).toBeUndefined();
  });
  it("limitSwap=false leaves swap out (kernels without swap accounting)", () => {
    expect(spec({ resources: { memoryLimitBytes: 1 << 20 } }, IMAGE, { limitSwap: false }).linux.resources.memory).toEqual({
      limit: 1 << 20,
    });
  });
  it("devices: deny all, then allow the usual character devices", () => {
    const d = spec().linux.resources.devices;
    expect(d[0]).toEqual({ allow: false, access: "rwm" });
    const allowed = d.slice(1).map((x: any) => `${x.type} ${x.major}:${x.minor} ${x.access} ${x.allow}`);
    expect(allowed).toEqual([
      "c 1:3 rwm true",
      "c 1:5 rwm true",
      "c 1:7 rwm true",
      "c 1:8 rwm true",
      "c 1:9 rwm true",
      "c 5:0 rwm true",
      "c 5:2 rwm true",
      "c 136:undefined rwm true",
    ]);
  });
});
