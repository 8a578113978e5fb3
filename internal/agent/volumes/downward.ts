// The downward API: a pod's own fields and its containers' resources, as files of a downwardAPI
// (or projected) volume and as environment variables (resourceFieldRef).
import type { Pod, ResourceFieldSelector } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { quantityToMilli } from "../../api/quantity.ts";

/** Thrown for a field or resource the agent cannot provide (validation keeps them out of the API). */
export class DownwardApiError extends Error {
  override name = "DownwardApiError";
}

/** `k="v"` lines, sorted by key, as the kubelet writes labels and annotations. */
export function formatMap(m: Record<string, string>): string {
  return Object.keys(m)
    .sort()
    .map((k) => `${k}=${JSON.stringify(m[k])}`)
    .join("\n");
}

/** The pod's own metadata a fieldRef names (one label or annotation too), or undefined for another path. */
export function metadataFieldValue(pod: Pod, fieldPath: string): string | undefined {
  const m = pod.metadata!;
  const one = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (one) return (one[1] === "labels" ? m.labels : m.annotations)[one[2]] ?? "";
  switch (fieldPath) {
    case "metadata.name":
      return m.name;
    case "metadata.namespace":
      return m.namespace;
    case "metadata.uid":
      return m.uid;
  }
  return undefined;
}

/** A fieldRef's value in a downwardAPI volume file: metadata only, whole maps included. */
export function volumeFieldValue(pod: Pod, fieldPath: string): string {
  const m = pod.metadata!;
  if (fieldPath === "metadata.labels") return formatMap(m.labels);
  if (fieldPath === "metadata.annotations") return formatMap(m.annotations);
  const value = metadataFieldValue(pod, fieldPath);
  if (value === undefined) throw new DownwardApiError(`unsupported fieldRef "${fieldPath}" in a downwardAPI volume`);
  return value;
}

const ceilDiv = (a: bigint, b: bigint) => (a + b - 1n) / b;

/**
 * A resourceFieldRef's value, as the kubelet computes it: the container's limit (the node's
 * allocatable when it sets none) or request, divided by the divisor (default 1) and rounded up.
 * `defaultContainer` names the container when the selector does not (environment variables).
 */
export function resourceFieldValue(pod: Pod, sel: ResourceFieldSelector, nodeAllocatable: Record<string, string>, defaultContainer?: string): string {
  const name = sel.containerName || defaultContainer;
  const c = [...pod.spec!.containers, ...pod.spec!.initContainers].find((x) => x.name === name);
  if (!c) throw new DownwardApiError(`resourceFieldRef: the pod has no container "${name ?? ""}"`);
  const [kind, resource] = sel.resource.split(".", 2) as [string, string];
  if ((kind !== "limits" && kind !== "requests") || !["cpu", "memory", "ephemeral-storage"].includes(resource)) {
    throw new DownwardApiError(`unsupported resourceFieldRef resource "${sel.resource}"`);
  }
  const limits = c.resources?.limits ?? {};
  const requests = c.resources?.requests ?? {};
  const value = kind === "limits" ? (limits[resource] ?? nodeAllocatable[resource] ?? "0") : (requests[resource] ?? limits[resource] ?? "0");
  const divisor = quantityToMilli(sel.divisor || "1");
  if (divisor <= 0n) throw new DownwardApiError(`resourceFieldRef divisor "${sel.divisor}" must be greater than zero`);
  const milli = quantityToMilli(value);
  return String(ceilDiv(milli, divisor));
}
