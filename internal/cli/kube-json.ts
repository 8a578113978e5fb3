// Kubernetes JSON <-> our proto3 JSON, walked along the message descriptors.
//
// Our .proto field names follow Kubernetes, so the two JSON forms differ only where Kubernetes
// spells an initialism in capitals (clusterIP, podIPs, podCIDR, containerID, nonResourceURLs)
// and proto3 JSON does not (clusterIp, podIps, podCidr, containerId, nonResourceUrls), and in
// value shapes Kubernetes is looser about: int-or-string fields and quantities accept numbers,
// and any field may be null.
//
// Reading (toProtoJson) is strict: a field our proto does not have is an error naming its path,
// never silently dropped — "unsupported" when Kubernetes has it (kube-unsupported.ts), "unknown"
// with the nearest name when Kubernetes does not either — and every problem of an object is
// reported at once. Writing (toKubeJson) renames to Kubernetes' spelling and prints int64
// values as numbers, as Kubernetes does.
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { parseQuantity } from "../api/quantity.ts";
import { nearestName, unsupportedEntry } from "./kube-unsupported.ts";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A problem in a manifest, with the path of the offending field ("spec.ports[0].port"). */
export class ManifestFieldError extends Error {
  override name = "ManifestFieldError";
  readonly path: string;
  constructor(path: string, message: string) {
    super(path === "" ? message : `${path}: ${message}`);
    this.path = path;
  }
}

/** A field Kubernetes has and Skiff does not (yet). */
export class UnsupportedFieldError extends ManifestFieldError {
  override name = "UnsupportedFieldError";
  constructor(path: string) {
    super("", `unsupported field ${path} (Skiff does not support it yet)`);
  }
}

/** A field Kubernetes does not have either: most likely a typo. */
export class UnknownFieldError extends ManifestFieldError {
  override name = "UnknownFieldError";
  constructor(path: string, suggestion?: string) {
    super("", `unknown field ${path}${suggestion ? ` (did you mean ${suggestion}?)` : ""}`);
  }
}

// At most this many problems are spelt out for one object (a document of garbage stays readable).
const MAX_REPORTED = 50;

/** Every problem of one object, reported together ("3 problems: a; b; c"). */
export class ManifestFieldErrors extends Error {
  override name = "ManifestFieldErrors";
  readonly errors: ManifestFieldError[];
  constructor(errors: ManifestFieldError[]) {
    const shown = errors.slice(0, MAX_REPORTED).map((e) => e.message);
    if (errors.length > MAX_REPORTED) shown.push(`and ${errors.length - MAX_REPORTED} more`);
    super(errors.length === 1 ? errors[0].message : `${errors.length} problems: ${shown.join("; ")}`);
    this.errors = errors;
  }
}

// Non-leading name parts that Kubernetes writes as capitalised initialisms.
const INITIALISMS: Record<string, string> = { ip: "IP", ips: "IPs", id: "ID", cidr: "CIDR", cidrs: "CIDRs", pid: "PID", ipc: "IPC", urls: "URLs", api: "API" };

/** The Kubernetes JSON name of a field: proto `pod_ip` -> `podIP`, `api_version` -> `apiVersion`. */
export function kubeFieldName(field: DescField): string {
  return field.name
    .split("_")
    .map((part, i) => (i === 0 ? part : (INITIALISMS[part] ?? part.charAt(0).toUpperCase() + part.slice(1))))
    .join("");
}

// Fields whose Kubernetes type is IntOrString: a number is accepted and kept as its decimal string.
const INT_OR_STRING = new Set([
  "skiff.v1alpha1.ServicePort.target_port",
  "skiff.v1alpha1.HTTPGetAction.port",
  "skiff.v1alpha1.TCPSocketAction.port",
  "skiff.v1alpha1.RollingUpdateDeployment.max_surge",
  "skiff.v1alpha1.RollingUpdateDeployment.max_unavailable",
]);

// Quantity fields (a string field, or the values of a map): numbers accepted, every value parsed.
const QUANTITIES = new Set([
  "skiff.v1alpha1.ResourceRequirements.requests",
  "skiff.v1alpha1.ResourceRequirements.limits",
  "skiff.v1alpha1.NodeStatus.capacity",
  "skiff.v1alpha1.NodeStatus.allocatable",
  "skiff.v1alpha1.PersistentVolumeSpec.capacity",
  "skiff.v1alpha1.PersistentVolumeClaimStatus.capacity",
  "skiff.v1alpha1.EmptyDirVolumeSource.size_limit",
  "skiff.v1alpha1.ResourceFieldSelector.divisor",
]);

const fieldIndexes = new WeakMap<DescMessage, Map<string, DescField>>();

/** Every spelling a field may have on input: Kubernetes', proto3 JSON's and the proto name. */
function fieldIndex(desc: DescMessage): Map<string, DescField> {
  let idx = fieldIndexes.get(desc);
  if (!idx) {
    idx = new Map();
    for (const f of desc.fields) {
      idx.set(f.name, f);
      idx.set(f.jsonName, f);
      idx.set(kubeFieldName(f), f);
    }
    fieldIndexes.set(desc, idx);
  }
  return idx;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const join = (path: string, key: string) => (path === "" ? key : `${path}.${key}`);

/**
 * Converts one Kubernetes JSON object (apiVersion and kind already removed) into the proto3 JSON
 * of `desc`, ready for fromJson. Every problem is found before anything is thrown: one
 * ManifestFieldError (UnsupportedFieldError, UnknownFieldError) naming its path, or
 * ManifestFieldErrors listing them all.
 */
export function toProtoJson(desc: DescMessage, value: unknown, path = ""): Json {
  const problems: ManifestFieldError[] = [];
  const out = collect(problems, () => messageToProto(desc, value, path, problems));
  if (problems.length === 1) throw problems[0];
  if (problems.length > 0) throw new ManifestFieldErrors(problems);
  return out ?? {};
}

/** Runs one conversion; a ManifestFieldError becomes a recorded problem (undefined returned). */
function collect<T>(problems: ManifestFieldError[], convert: () => T): T | undefined {
  try {
    return convert();
  } catch (err) {
    if (!(err instanceof ManifestFieldError)) throw err;
    problems.push(err);
    return undefined;
  }
}

/** The names a misspelt field of `desc` may have meant: ours and Kubernetes' (Skiff lacks them). */
function knownNames(desc: DescMessage): string[] {
  return [...desc.fields.map(kubeFieldName), ...(unsupportedEntry(desc.typeName)?.fields ?? [])];
}

function unknownKeyError(desc: DescMessage, key: string, path: string): ManifestFieldError {
  if (unsupportedEntry(desc.typeName)?.fields?.includes(key)) return new UnsupportedFieldError(path);
  return new UnknownFieldError(path, nearestName(key, knownNames(desc)));
}

/** A value Kubernetes allows that Skiff refuses (the table's `values`). */
function refusedValue(desc: DescMessage, field: DescField, v: unknown, path: string): ManifestFieldError | undefined {
  const refused = unsupportedEntry(desc.typeName)?.values?.[kubeFieldName(field)];
  if (!refused) return undefined;
  const items = Array.isArray(v) ? v : [v];
  const bad = items.find((item) => typeof item === "string" && refused.includes(item));
  return bad === undefined ? undefined : new ManifestFieldError(path, `unsupported value ${JSON.stringify(bad)} (Skiff does not support it yet)`);
}

function messageToProto(desc: DescMessage, value: unknown, path: string, problems: ManifestFieldError[]): Json {
  if (desc.typeName === "google.protobuf.Timestamp") {
    if (typeof value !== "string") throw new ManifestFieldError(path, `must be an RFC 3339 time string, got ${describe(value)}`);
    if (Number.isNaN(Date.parse(value))) throw new ManifestFieldError(path, `invalid time ${JSON.stringify(value)}`);
    return value;
  }
  if (!isPlainObject(value)) throw new ManifestFieldError(path, `must be an object, got ${describe(value)}`);
  const idx = fieldIndex(desc);
  const out: Record<string, Json> = {};
  for (const [key, v] of Object.entries(value)) {
    const fieldPath = join(path, key);
    const field = idx.get(key);
    if (!field) {
      problems.push(unknownKeyError(desc, key, fieldPath));
      continue;
    }
    if (v === null || v === undefined) continue; // null means unset, as in Kubernetes
    const refused = refusedValue(desc, field, v, fieldPath);
    if (refused) problems.push(refused);
    const converted = collect(problems, () => fieldToProto(desc, field, v, fieldPath, problems));
    if (converted !== undefined) out[field.jsonName] = converted;
  }
  return out;
}

function fieldToProto(desc: DescMessage, field: DescField, v: unknown, path: string, problems: ManifestFieldError[]): Json {
  const id = `${desc.typeName}.${field.name}`;
  switch (field.fieldKind) {
    case "scalar":
      return scalarToProto(field.scalar, v, path, id);
    case "enum":
      return enumToProto(field.enum.values, v, path);
    case "message":
      return messageToProto(field.message, v, path, problems);
    case "list": {
      if (!Array.isArray(v)) throw new ManifestFieldError(path, `must be a list, got ${describe(v)}`);
      const items = v.map((item, i) => {
        const p = `${path}[${i}]`;
        return collect(problems, () => {
          if (item === null) throw new ManifestFieldError(p, "must not be null");
          if (field.listKind === "message") return messageToProto(field.message, item, p, problems);
          if (field.listKind === "enum") return enumToProto(field.enum.values, item, p);
          return scalarToProto(field.scalar, item, p, id);
        });
      });
      return items.filter((item): item is Json => item !== undefined);
    }
    case "map": {
      if (!isPlainObject(v)) throw new ManifestFieldError(path, `must be an object, got ${describe(v)}`);
      const out: Record<string, Json> = {};
      for (const [k, item] of Object.entries(v)) {
        const p = `${path}.${k}`;
        if (item === null || item === undefined) continue;
        const converted = collect(problems, () => {
          if (field.mapKind === "message") return messageToProto(field.message, item, p, problems);
          if (field.mapKind === "enum") return enumToProto(field.enum.values, item, p);
          return scalarToProto(field.scalar, item, p, id);
        });
        if (converted !== undefined) out[k] = converted;
      }
      return out;
    }
  }
}

function enumToProto(values: readonly { name: string; number: number }[], v: unknown, path: string): Json {
  const ok = values.find((e) => e.name === v || e.number === v);
  if (!ok) throw new ManifestFieldError(path, `must be one of ${values.map((e) => e.name).join(", ")}, got ${describe(v)}`);
  return ok.name;
}

function scalarToProto(t: ScalarType, v: unknown, path: string, id: string): Json {
  switch (t) {
    case ScalarType.STRING: {
      if (QUANTITIES.has(id)) {
        const s = typeof v === "number" ? String(v) : v;
        if (typeof s !== "string") throw new ManifestFieldError(path, `must be a quantity such as "100m" or "128Mi", got ${describe(v)}`);
        try {
          parseQuantity(s);
        } catch (e) {
          throw new ManifestFieldError(path, (e as Error).message);
        }
        return s;
      }
      if (INT_OR_STRING.has(id) && typeof v === "number") {
        if (!Number.isInteger(v)) throw new ManifestFieldError(path, `must be an integer or a string, got ${describe(v)}`);
        return String(v);
      }
      if (typeof v !== "string") {
        const hint = typeof v === "number" || typeof v === "boolean" ? " (quote it in YAML)" : "";
        throw new ManifestFieldError(path, `must be a string, got ${describe(v)}${hint}`);
      }
      return v;
    }
    case ScalarType.BOOL:
      if (typeof v !== "boolean") throw new ManifestFieldError(path, `must be true or false, got ${describe(v)}`);
      return v;
    case ScalarType.BYTES:
      if (typeof v !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v.replace(/\s/g, ""))) {
        throw new ManifestFieldError(path, `must be a base64 string, got ${describe(v)}`);
      }
      return v.replace(/\s/g, "");
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      if (typeof v !== "number") throw new ManifestFieldError(path, `must be a number, got ${describe(v)}`);
      return v;
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      if (typeof v === "number" && Number.isSafeInteger(v)) return v;
      if (typeof v === "string" && /^-?\d+$/.test(v)) return v;
      throw new ManifestFieldError(path, `must be an integer, got ${describe(v)}`);
    default: {
      // 32-bit integers
      const unsigned = t === ScalarType.UINT32 || t === ScalarType.FIXED32;
      const min = unsigned ? 0 : -(2 ** 31);
      const max = unsigned ? 2 ** 32 - 1 : 2 ** 31 - 1;
      if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
        throw new ManifestFieldError(path, `must be a 32-bit integer, got ${describe(v)}`);
      }
      return v;
    }
  }
}

const INT64_TYPES = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

function int64ToKube(v: Json): Json {
  if (typeof v !== "string") return v;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v;
}

/**
 * Converts proto3 JSON (from toJson) of `desc` into Kubernetes JSON: Kubernetes' field spelling,
 * int64 as numbers. Unknown keys pass through unchanged.
 */
export function toKubeJson(desc: DescMessage, value: Json): Json {
  if (!isPlainObject(value) || desc.typeName.startsWith("google.protobuf.")) return value;
  const byJsonName = new Map(desc.fields.map((f) => [f.jsonName, f]));
  const out: Record<string, Json> = {};
  for (const [key, v] of Object.entries(value as Record<string, Json>)) {
    const field = byJsonName.get(key);
    if (!field) {
      out[key] = v;
      continue;
    }
    out[kubeFieldName(field)] = fieldToKube(field, v);
  }
  return out;
}

function fieldToKube(field: DescField, v: Json): Json {
  switch (field.fieldKind) {
    case "message":
      return toKubeJson(field.message, v);
    case "scalar":
      if (INT64_TYPES.has(field.scalar)) return int64ToKube(v);
      // IntOrString: a number stays a number, as it was written.
      if (typeof v === "string" && /^\d+$/.test(v) && INT_OR_STRING.has(`${field.parent.typeName}.${field.name}`)) return Number(v);
      return v;
    case "list":
      if (!Array.isArray(v)) return v;
      if (field.listKind === "message") return v.map((item) => toKubeJson(field.message, item));
      if (field.listKind === "scalar" && INT64_TYPES.has(field.scalar)) return v.map(int64ToKube);
      return v;
    case "map": {
      if (!isPlainObject(v)) return v;
      const out: Record<string, Json> = {};
      for (const [k, item] of Object.entries(v as Record<string, Json>)) {
        if (field.mapKind === "message") out[k] = toKubeJson(field.message, item);
        else if (field.mapKind === "scalar" && INT64_TYPES.has(field.scalar)) out[k] = int64ToKube(item);
        else out[k] = item;
      }
      return out;
    }
    default:
      return v;
  }
}

export type { Json };
