// The ContainerRuntime interface: what the node agent needs from a container runtime, and no
// more. Two implementations: containerd/ (real containers through containerd's native gRPC API)
// and fake/ (hollow nodes for scale tests). Agent logic must not know which one it drives.
//
// Networking is not here: the agent creates the pod's network namespace with CNI
// (internal/network) and passes its path in ContainerConfig.netnsPath.

export interface ImageInfo {
  /** Every name the image is known by, e.g. "registry.local:5000/busybox:v1". */
  names: string[];
  /** The image ID: the digest of its config blob ("sha256:…"), as Kubernetes reports imageID. */
  id: string;
  /** Digest of the manifest (or index) the image was pulled or imported by. */
  digest: string;
  sizeBytes: number;
}

export interface RegistryAuth {
  username: string;
  password: string;
}

export interface PullOptions {
  auth?: RegistryAuth;
  /** Registries (host:port) that may be reached over plain HTTP besides localhost. */
  insecureRegistries?: string[];
  signal?: AbortSignal;
}

export interface Mount {
  hostPath: string;
  containerPath: string;
  readOnly: boolean;
}

export interface ContainerResources {
  /** cgroup cpu.shares (Kubernetes: requests.cpu in milli × 1024 / 1000, at least 2). */
  cpuShares?: number;
  /** CFS quota/period in microseconds (Kubernetes: limits.cpu). */
  cpuQuotaUs?: number;
  cpuPeriodUs?: number;
  memoryLimitBytes?: number;
}

/** Labels every container carries, so an agent restart can adopt what it finds. */
export interface ContainerLabels {
  podUid: string;
  podName: string;
  podNamespace: string;
  containerName: string;
  /** How many times this container was restarted before this one (Kubernetes' restartCount). */
  attempt: number;
}

/** The system-call filter of a container. */
export type SeccompSetting =
  | { type: "Unconfined" }
  /** The runtime's own allowlist. */
  | { type: "RuntimeDefault" }
  /** A JSON profile (OCI `linux.seccomp` shape) in a file on the node. */
  | { type: "Localhost"; path: string };

/**
 * What a container's processes may do, resolved by the agent from the pod's and the container's
 * securityContext (the container's settings win). Runtime-neutral: the runtime turns it into its
 * own terms (the OCI spec for containerd).
 */
export interface ContainerSecurity {
  /** undefined: the image's USER. */
  runAsUser?: number;
  /** undefined: the group of the image's USER (0 when it names none). */
  runAsGroup?: number;
  /** Refuse to create the container when its effective uid is 0 or cannot be known (a user name). */
  runAsNonRoot: boolean;
  /** Groups besides the primary one (supplementalGroups, then fsGroup). */
  supplementalGroups: number[];
  readOnlyRootFilesystem: boolean;
  /** Every capability the runtime holds, host devices, no masked /proc paths, no seccomp. */
  privileged: boolean;
  /** false sets no_new_privs (setuid binaries and file capabilities grant nothing). */
  allowPrivilegeEscalation: boolean;
  /** "CAP_"-prefixed upper-case names; "ALL" in drop removes the whole default set. */
  capabilities: { add: string[]; drop: string[] };
  seccomp: SeccompSetting;
  /** Share the node's PID / IPC namespace instead of getting one's own. */
  hostPid: boolean;
  hostIpc: boolean;
}

/**
 * The container's settings cannot be honoured with this image (runAsNonRoot and a root or named
 * USER): Kubernetes' CreateContainerConfigError, not a runtime failure.
 */
export class ContainerConfigRefusedError extends Error {
  override name = "ContainerConfigRefusedError";
}

/**
 * The uid and gid a container runs as: securityContext first, else the image's USER ("uid",
 * "uid:gid", "name", "name:group"; empty = root). uid undefined = a user name, unknown until
 * the rootfs' /etc/passwd is read, which this runtime does not do.
 */
export function effectiveUser(sec: Pick<ContainerSecurity, "runAsUser" | "runAsGroup"> | undefined, imageUser: string): { uid: number | undefined; gid: number } {
  const [u = "", g = ""] = (imageUser ?? "").split(":", 2);
  const numeric = (s: string) => (/^\d+$/.test(s) ? Number(s) : undefined);
  const uid = sec?.runAsUser ?? (u === "" ? 0 : numeric(u));
  const gid = sec?.runAsGroup ?? numeric(g) ?? 0;
  return { uid, gid };
}

/** Kubernetes' runAsNonRoot check against the user the container would run as; throws when it fails. */
export function verifyRunAsNonRoot(sec: ContainerSecurity | undefined, imageUser: string): void {
  if (!sec?.runAsNonRoot) return;
  const { uid } = effectiveUser(sec, imageUser);
  if (uid === undefined) {
    throw new ContainerConfigRefusedError(`container has runAsNonRoot and image has non-numeric user (${imageUser.split(":")[0]}), cannot verify user is non-root`);
  }
  if (uid === 0) {
    const why = sec.runAsUser === 0 ? "runAsUser is 0" : "image will run as root";
    throw new ContainerConfigRefusedError(`container has runAsNonRoot and ${why}: set securityContext.runAsUser to a non-zero uid or use an image with a numeric non-root USER`);
  }
}

export interface ContainerConfig extends ContainerLabels {
  image: string;
  /** Overrides the image entrypoint when non-empty (pod `command`). */
  command: string[];
  /** Overrides the image cmd when non-empty, or when command is set (pod `args`). */
  args: string[];
  env: { name: string; value: string }[];
  workingDir: string;
  mounts: Mount[];
  resources: ContainerResources;
  /** The pod's network namespace to join; "" for the host network. */
  netnsPath: string;
  hostname: string;
  /** Where stdout and stderr go: one file, appended, in the CRI log format of log-format.ts. */
  logPath: string;
  tty?: boolean;
  /** Absent: the runtime's defaults (root or the image's USER, default capabilities, no seccomp). */
  security?: ContainerSecurity;
}

export type ContainerState = "created" | "running" | "exited" | "unknown";

export interface ContainerInfo extends ContainerLabels {
  id: string;
  image: string;
  imageId: string;
  state: ContainerState;
  pid?: number;
  exitCode?: number;
  /** Set when the container was killed by the kernel's OOM killer. */
  oomKilled?: boolean;
  /**
   * Set when the container's process went away unseen (the machine restarted, or the runtime's
   * supervisor of it was killed): state "exited", exitCode 255, finishedAt when that was found.
   */
  lost?: boolean;
  createdAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  logPath: string;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export type RuntimeEvent =
  | { type: "exit"; containerId: string; exitCode: number; at: Date }
  | { type: "oom"; containerId: string; at: Date };

export interface ContainerRuntime {
  /** e.g. { name: "containerd", version: "1.6.20" } */
  version(): Promise<{ name: string; version: string }>;

  /** Pulls from an OCI/Docker v2 registry and unpacks; throws an error whose message is the registry's. */
  pullImage(ref: string, opts?: PullOptions): Promise<ImageInfo>;
  /** Imports every image of an OCI layout tarball and unpacks them. */
  importImage(tarPath: string): Promise<ImageInfo[]>;
  getImage(ref: string): Promise<ImageInfo | undefined>;
  listImages(): Promise<ImageInfo[]>;
  removeImage(ref: string): Promise<void>;

  /** Creates (not starts) a container; returns its id. The command must exist in the image. */
  createContainer(cfg: ContainerConfig): Promise<string>;
  startContainer(id: string): Promise<void>;
  /** SIGTERM (or the image's stop signal), up to timeoutSeconds, then SIGKILL; resolves once it exited. */
  stopContainer(id: string, timeoutSeconds: number): Promise<void>;
  /** Removes the container, its task and its rootfs snapshot; a missing one is not an error. */
  removeContainer(id: string): Promise<void>;
  listContainers(): Promise<ContainerInfo[]>;
  containerStatus(id: string): Promise<ContainerInfo | undefined>;
  /** Runs a command inside a running container (exec probes); kills it after timeoutMs. */
  exec(id: string, command: string[], timeoutMs: number): Promise<ExecResult>;
  /** Container exits and OOM kills, as they happen, until the signal aborts. */
  events(signal: AbortSignal): AsyncIterable<RuntimeEvent>;
  close(): Promise<void>;
}
