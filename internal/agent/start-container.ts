// Starting one container instance: the image per imagePullPolicy (with ImagePullBackOff, and the
// credentials of the pod's imagePullSecrets tried in turn), the runtime config, create, start.
// Every failure becomes a ContainerStartError whose reason is the waiting reason a Kubernetes user
// knows (ErrImagePull, ImagePullBackOff, ErrImageNeverPull, CreateContainerConfigError,
// CreateContainerError, RunContainerError) and whose message is the runtime's or registry's own
// words.
import { ConnectError } from "@connectrpc/connect";
import type { Container, Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { defaultPullPolicy } from "../api/defaults.ts";
import { ContainerConfigRefusedError, type ContainerRuntime, type RegistryAuth } from "../runtime/runtime.ts";
import { buildContainerConfig, type ConfigContext } from "./container-config.ts";
import { onMemoryFs } from "./file-ops.ts";
import { prepareInstanceFiles, terminationLogPath } from "./termination-message.ts";
import { nextBackoff, type BackoffPolicy, type ContainerRecord } from "./state.ts";

export class ContainerStartError extends Error {
  override name = "ContainerStartError";
  readonly reason: string;
  /** Epoch ms when trying again makes sense (a back-off); undefined: the usual retry delay. */
  readonly retryAt: number | undefined;
  constructor(reason: string, message: string, retryAt?: number) {
    super(message);
    this.reason = reason;
    this.retryAt = retryAt;
  }
}

/** The runtime's own words: without connect's "[code]" prefix for errors that came over gRPC. */
const messageOf = (err: unknown) => (err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err));

export interface StartDeps {
  runtime: ContainerRuntime;
  imagePullBackoff: BackoffPolicy;
  /** Credentials to try, in order, for an image of this pod (imagePullSecrets); none: anonymous. */
  credentials?(pod: Pod, image: string): Promise<RegistryAuth[]>;
  /** Registries (host:port) spoken to over plain HTTP besides loopback ones. */
  insecureRegistries?: string[];
}

/** Wrong or missing credentials: the next credential may do better. */
const isAuthFailure = (err: unknown) => {
  const reason = (err as { reason?: unknown } | null)?.reason;
  return reason === "Unauthorized" || reason === "Denied";
};

/** Pulls with each credential in turn (anonymously when there is none); throws the last failure. */
async function pull(deps: StartDeps, pod: Pod, image: string): Promise<void> {
  const auths = deps.credentials ? await deps.credentials(pod, image) : [];
  const tries: (RegistryAuth | undefined)[] = auths.length > 0 ? auths : [undefined];
  for (let i = 0; ; i++) {
    try {
      await deps.runtime.pullImage(image, { auth: tries[i], insecureRegistries: deps.insecureRegistries });
      return;
    } catch (err) {
      if (i + 1 >= tries.length || !isAuthFailure(err)) throw err;
    }
  }
}

/** Makes sure the image is there as the pull policy asks, pulling if needed (with back-off). */
export async function ensureImage(deps: StartDeps, pod: Pod, c: Container, rec: ContainerRecord, now = Date.now()): Promise<void> {
  const { runtime } = deps;
  const pullPolicy = c.imagePullPolicy || defaultPullPolicy(c.image);
  if (pullPolicy === "Never") {
    if (await runtime.getImage(c.image)) return;
    throw new ContainerStartError("ErrImageNeverPull", `Container image "${c.image}" is not present with pull policy of Never`);
  }
  if (pullPolicy === "IfNotPresent" && (await runtime.getImage(c.image))) return;
  const last = rec.pull?.image === c.image ? rec.pull : undefined;
  if (last && now < last.until) {
    throw new ContainerStartError("ImagePullBackOff", `Back-off pulling image "${c.image}": ${last.message}`, last.until);
  }
  try {
    await pull(deps, pod, c.image);
    rec.pull = undefined;
  } catch (err) {
    const message = messageOf(err);
    const b = nextBackoff(last, deps.imagePullBackoff, Date.now());
    rec.pull = { ...b, image: c.image, message };
    throw new ContainerStartError("ErrImagePull", message, b.until);
  }
}

/** Creates and starts one instance of the container; returns its id. */
export async function startContainer(deps: StartDeps, pod: Pod, c: Container, attempt: number, rec: ContainerRecord, ctx: ConfigContext): Promise<string> {
  const { runtime } = deps;
  await ensureImage(deps, pod, c, rec);
  let cfg;
  try {
    cfg = buildContainerConfig(pod, c, attempt, ctx);
    await prepareInstanceFiles(cfg.logPath, terminationLogPath(ctx.rootDir, pod.metadata!.uid, c.name, attempt), onMemoryFs(ctx.rootDir));
  } catch (err) {
    throw new ContainerStartError("CreateContainerConfigError", messageOf(err));
  }
  let id: string;
  try {
    id = await runtime.createContainer(cfg);
  } catch (err) {
    // runAsNonRoot against the image's USER is checked where the image config is known.
    const reason = err instanceof ContainerConfigRefusedError ? "CreateContainerConfigError" : "CreateContainerError";
    throw new ContainerStartError(reason, messageOf(err));
  }
  try {
    await runtime.startContainer(id);
  } catch (err) {
    // A container that never ran is of no use, not even for `logs --previous`.
    await runtime.removeContainer(id).catch(() => undefined);
    throw new ContainerStartError("RunContainerError", messageOf(err));
  }
  return id;
}
