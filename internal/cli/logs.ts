// What `skiffctl logs` needs besides the command itself: which container to read by default, and
// the flag values (--tail, --since, --since-time, --limit-bytes) in the API's terms. The logs come
// through the apiserver (PodService.Log), which finds the pod's node agent itself.
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { parseRfc3339 } from "../runtime/log-format.ts";
import { CliError } from "./errors.ts";

/** kubectl's annotation naming the container `logs` and `exec` use by default. */
export const DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container";

/**
 * The container to read when none is named, as kubectl picks it: the default-container annotation,
 * else the first app container, with a note for stderr when the pod has others.
 */
export function defaultContainer(pod: Pod): { name: string; note?: string } {
  const app = pod.spec?.containers ?? [];
  const init = pod.spec?.initContainers ?? [];
  const wanted = pod.metadata?.annotations?.[DEFAULT_CONTAINER_ANNOTATION];
  if (wanted && [...app, ...init].some((c) => c.name === wanted)) return { name: wanted };
  if (app.length === 0) return { name: "" };
  const others = app.length + init.length > 1;
  const names = [...app.map((c) => c.name), ...init.map((c) => `${c.name} (init)`)];
  const notFound = wanted ? `Default container name "${wanted}" not found in pod ${pod.metadata?.name ?? ""}\n` : "";
  return others || wanted ? { name: app[0].name, note: `${notFound}Defaulted container "${app[0].name}" out of: ${names.join(", ")}` } : { name: app[0].name };
}

/** --tail: a whole number of lines; -1 (kubectl's default) means all. */
export function parseTail(value: string | undefined): bigint | undefined {
  if (value === undefined || value === "") return undefined;
  if (!/^-?\d+$/.test(value.trim())) throw new CliError(`--tail must be a whole number of lines (-1 for all), got "${value}"`);
  const n = BigInt(value.trim());
  if (n < -1n) throw new CliError(`--tail must be -1 (all lines) or more, got ${value}`);
  return n === -1n ? undefined : n;
}

const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/** --since: a Go-style duration ("30s", "5m", "1h30m") in whole seconds, rounded up. */
export function parseSince(value: string | undefined): bigint | undefined {
  if (value === undefined || value === "") return undefined;
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== value) {
    throw new CliError(`--since must be a duration such as 30s, 5m or 1h30m, got "${value}"`);
  }
  const seconds = parts.reduce((sum, p) => sum + Number(p[1]) * UNIT_SECONDS[p[2]], 0);
  if (seconds <= 0) throw new CliError(`--since must be more than 0, got "${value}"`);
  return BigInt(Math.ceil(seconds));
}

/** --limit-bytes: a whole number of bytes; 0 (kubectl's default) means no limit. */
export function parseLimitBytes(value: string | undefined): bigint | undefined {
  if (value === undefined || value === "") return undefined;
  if (!/^-?\d+$/.test(value.trim())) throw new CliError(`--limit-bytes must be a whole number of bytes, got "${value}"`);
  const n = BigInt(value.trim());
  if (n < 0n) throw new CliError(`--limit-bytes must be greater than 0, got ${value}`);
  return n === 0n ? undefined : n;
}

/** --since-time: an RFC 3339 time, passed on as written (the agent reads it to the nanosecond). */
export function parseSinceTime(value: string | undefined): string {
  if (value === undefined || value === "") return "";
  if (parseRfc3339(value) === undefined) throw new CliError(`--since-time must be an RFC 3339 time such as 2024-05-01T10:00:00Z, got "${value}"`);
  return value;
}

/** --since and --since-time are one filter: kubectl refuses both, with this message. */
export function checkOneSince(since: string | undefined, sinceTime: string | undefined): void {
  if (since && sinceTime) throw new CliError("at most one of `sinceTime` or `sinceSeconds` may be specified");
}

/** "pod/NAME", "pods/NAME", "po/NAME" or just NAME → NAME. */
export function podName(arg: string): string {
  const slash = arg.indexOf("/");
  if (slash === -1) return arg;
  const kind = arg.slice(0, slash).toLowerCase();
  if (!["pod", "pods", "po"].includes(kind) || arg.slice(slash + 1) === "") throw new CliError(`logs reads a pod's containers: give POD or pod/POD, not "${arg}"`);
  return arg.slice(slash + 1);
}
