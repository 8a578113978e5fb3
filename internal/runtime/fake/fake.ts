// A hollow runtime: containers are records that "run" until stopped, with no processes. Lets
// scale tests run hundreds of node agents in one process (like kubemark's hollow nodes), and
// lets unit tests script exits, OOM kills and image pull failures.
import { createHash, randomUUID } from "node:crypto";
import {
  verifyRunAsNonRoot,
  type ContainerConfig,
  type ContainerInfo,
  type ContainerRuntime,
  type ExecResult,
  type ImageInfo,
  type PullOptions,
  type RuntimeEvent,
} from "../runtime.ts";

export interface FakeRuntime extends ContainerRuntime {
  /** Makes a pull of this reference fail with this message. */
  failPull(ref: string, message: string): void;
  /** Ends a running container as if its process exited. */
  exit(id: string, exitCode: number, oomKilled?: boolean): void;
  /** Ends a running container unseen, as a reboot or a killed shim does: no event, lost (exit 255). */
  lose(id: string): void;
  /** What an exec in this container answers (default: exit 0). */
  setExec(fn: (id: string, command: string[]) => ExecResult): void;
  /** Makes containers with this command (first element) fail to start, like a missing binary. */
  failCommand(binary: string, message: string): void;
}

function imageFor(ref: string): ImageInfo {
  const digest = `sha256:${createHash("sha256").update(ref).digest("hex")}`;
  return { names: [ref], id: digest, digest, sizeBytes: 1_000_000 };
}

export function createFakeRuntime(opts: { images?: string[] } = {}): FakeRuntime {
  const images = new Map<string, ImageInfo>();
  for (const ref of opts.images ?? []) images.set(ref, imageFor(ref));
  const pullFailures = new Map<string, string>();
  const commandFailures = new Map<string, string>();
  const containers = new Map<string, ContainerInfo & { command: string[] }>();
  const listeners = new Set<(e: RuntimeEvent) => void>();
  let execFn: (id: string, command: string[]) => ExecResult = () => ({ exitCode: 0, stdout: "", stderr: "" });

  const emit = (e: RuntimeEvent) => {
    for (const l of listeners) l(e);
  };

  function finish(id: string, exitCode: number, oomKilled = false): void {
    const c = containers.get(id);
    if (!c || c.state !== "running") return;
    c.state = "exited";
    c.exitCode = exitCode;
    c.oomKilled = oomKilled;
    c.finishedAt = new Date();
    if (oomKilled) emit({ type: "oom", containerId: id, at: c.finishedAt });
    emit({ type: "exit", containerId: id, exitCode, at: c.finishedAt });
  }

  return {
    async version() {
      return { name: "fake", version: "0.1.0" };
    },
    async pullImage(ref: string, _opts?: PullOptions) {
      const failure = pullFailures.get(ref);
      if (failure) throw new Error(failure);
      const img = imageFor(ref);
      images.set(ref, img);
      return img;
    },
    async importImage(tarPath: string) {
      const img = imageFor(tarPath);
      images.set(tarPath, img);
      return [img];
    },
    async getImage(ref) {
      return images.get(ref);
    },
    async listImages() {
      return [...images.values()];
    },
    async removeImage(ref) {
      // By ID: every name of the image (as containerd's); by name: that name.
      for (const [name, img] of images) if (name === ref || img.id === ref) images.delete(name);
    },
    async createContainer(cfg: ContainerConfig) {
      const img = images.get(cfg.image);
      if (!img) throw new Error(`image "${cfg.image}" not found`);
      verifyRunAsNonRoot(cfg.security, ""); // fake images run as root
      const id = randomUUID().replaceAll("-", "");
      containers.set(id, {
        id,
        podUid: cfg.podUid,
        podName: cfg.podName,
        podNamespace: cfg.podNamespace,
        containerName: cfg.containerName,
        attempt: cfg.attempt,
        image: cfg.image,
        imageId: img.id,
        state: "created",
        createdAt: new Date(),
        logPath: cfg.logPath,
        command: [...cfg.command, ...cfg.args],
      });
      return id;
    },
    async startContainer(id) {
      const c = containers.get(id);
      if (!c) throw new Error(`container ${id} not found`);
      const failure = commandFailures.get(c.command[0] ?? "");
      if (failure) throw new Error(failure);
      c.state = "running";
      c.pid = 1000 + containers.size;
      c.startedAt = new Date();
    },
    async stopContainer(id) {
      finish(id, 137);
    },
    async removeContainer(id) {
      containers.delete(id);
    },
    async listContainers() {
      return [...containers.values()].map((c) => ({ ...c }));
    },
    async containerStatus(id) {
      const c = containers.get(id);
      return c ? { ...c } : undefined;
    },
    async exec(id, command) {
      const c = containers.get(id);
      if (!c || c.state !== "running") throw new Error(`container ${id} is not running`);
      return execFn(id, command);
    },
    async *events(signal: AbortSignal) {
      const queue: RuntimeEvent[] = [];
      let wake: (() => void) | undefined;
      const listener = (e: RuntimeEvent) => {
        queue.push(e);
        wake?.();
      };
      listeners.add(listener);
      const onAbort = () => wake?.();
      signal.addEventListener("abort", onAbort);
      try {
        while (!signal.aborted) {
          while (queue.length > 0) yield queue.shift()!;
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
      } finally {
        listeners.delete(listener);
        signal.removeEventListener("abort", onAbort);
      }
    },
    async close() {},
    failPull(ref, message) {
      pullFailures.set(ref, message);
    },
    exit(id, exitCode, oomKilled) {
      finish(id, exitCode, oomKilled);
    },
    lose(id) {
      const c = containers.get(id);
      if (!c || c.state !== "running") return;
      Object.assign(c, { state: "exited", exitCode: 255, lost: true, finishedAt: new Date(), pid: undefined });
    },
    setExec(fn) {
      execFn = fn;
    },
    failCommand(binary, message) {
      commandFailures.set(binary, message);
    },
  };
}
