// Whole objects as Kubernetes prints them (-o yaml, -o json, -o name): apiVersion and kind first,
// Kubernetes' field spelling, int64 as numbers, no protobuf internals.
import { toJson } from "@bufbuild/protobuf";
import YAML from "yaml";
import type { ApiObject, Kind } from "../../api/registry.ts";
import { toKubeJson, type Json } from "../kube-json.ts";

/** "pod", "deployment.apps", "lease.coordination.k8s.io": the prefix of `-o name` and messages. */
export function resourceRef(kind: Kind): string {
  const slash = kind.apiVersion.indexOf("/");
  return slash < 0 ? kind.singular : `${kind.singular}.${kind.apiVersion.slice(0, slash)}`;
}

export function toKubeObject(kind: Kind, obj: ApiObject): Record<string, Json> {
  const kube = toKubeJson(kind.schema, toJson(kind.schema, obj) as Json) as Record<string, Json>;
  return { apiVersion: kind.apiVersion, kind: kind.kind, ...kube };
}

export function toYaml(value: unknown): string {
  // YAML 1.1 on output too, so strings such as "yes" or "0644" come out quoted.
  return YAML.stringify(value, { version: "1.1", lineWidth: 0 });
}

export function toJsonText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export type ObjectFormat = "yaml" | "json" | "name";

/** One object in an output format (no trailing newline for name). */
export function formatObject(kind: Kind, obj: ApiObject, format: ObjectFormat): string {
  if (format === "name") return `${resourceRef(kind)}/${obj.metadata?.name ?? ""}\n`;
  const kube = toKubeObject(kind, obj);
  return format === "yaml" ? toYaml(kube) : toJsonText(kube);
}

/** Several objects (maybe of several kinds) as one Kubernetes List, or one name per line. */
export function formatList(items: { kind: Kind; obj: ApiObject }[], format: ObjectFormat): string {
  if (format === "name") return items.map(({ kind, obj }) => formatObject(kind, obj, "name")).join("");
  const list = { apiVersion: "v1", kind: "List", metadata: { resourceVersion: "" }, items: items.map(({ kind, obj }) => toKubeObject(kind, obj)) };
  return format === "yaml" ? toYaml(list) : toJsonText(list);
}
