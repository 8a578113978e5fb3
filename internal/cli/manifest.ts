// Decodes Kubernetes manifests into our API objects. A manifest for one of our kinds with the
// Kubernetes apiVersion ("v1", "apps/v1", "coordination.k8s.io/v1") applies unchanged where our
// proto has the fields; anything else is an error naming the document and every field at fault.
import { fromJson } from "@bufbuild/protobuf";
import { kindByName, kinds, type ApiObject, type Kind } from "../api/registry.ts";
import { toProtoJson } from "./kube-json.ts";
import type { RawDocument } from "./manifest-source.ts";

export interface ManifestObject {
  kind: Kind;
  object: ApiObject;
  /** Where it came from, for messages: "web.yaml: document 2 (Deployment web)". */
  where: string;
}

/** A document that cannot become an API object; the message starts with where it is. */
export class ManifestError extends Error {
  override name = "ManifestError";
}

/** "web.yaml: document 2", "-: document 1, item 3 (Deployment web)". */
export function documentLabel(doc: RawDocument, kind?: string, name?: string): string {
  let s = `${doc.source}: document ${doc.index}`;
  if (doc.item !== undefined) s += `, item ${doc.item}`;
  if (kind) s += ` (${kind}${name ? ` ${name}` : ""})`;
  return s;
}

export function knownKinds(): string {
  return kinds.map((k) => k.kind).sort().join(", ");
}

function field(obj: Record<string, unknown>, key: string): string | undefined {
  const v = obj[key];
  return typeof v === "string" ? v : undefined;
}

export interface ManifestIdentity {
  kind: Kind;
  name: string;
  namespace: string;
  where: string;
}

/** Kind, name and namespace of a document, checked against the registry (enough for delete -f). */
export function identifyDocument(doc: RawDocument): ManifestIdentity & { raw: Record<string, unknown> } {
  const v = doc.value;
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ManifestError(`${documentLabel(doc)}: expected an object with apiVersion and kind`);
  }
  const raw = v as Record<string, unknown>;
  const kindName = field(raw, "kind");
  const meta = raw.metadata as Record<string, unknown> | undefined;
  const hasMeta = typeof meta === "object" && meta !== null;
  const name = hasMeta ? field(meta, "name") : undefined;
  const where = documentLabel(doc, kindName, name);
  if (!kindName) throw new ManifestError(`${where}: kind is required`);
  const kind = kindByName(kindName);
  if (!kind) throw new ManifestError(`${where}: unknown kind "${kindName}" (known kinds: ${knownKinds()})`);
  const apiVersion = field(raw, "apiVersion");
  if (apiVersion === undefined) throw new ManifestError(`${where}: apiVersion is required (${kind.kind} is "${kind.apiVersion}")`);
  if (apiVersion !== kind.apiVersion) {
    throw new ManifestError(`${where}: ${kind.kind} has apiVersion "${kind.apiVersion}", not "${apiVersion}"`);
  }
  if (!name) throw new ManifestError(`${where}: metadata.name is required`);
  return { kind, name, namespace: (hasMeta ? field(meta, "namespace") : undefined) ?? "", where, raw };
}

/** Decodes one document. Throws ManifestError with the document's label. */
export function decodeDocument(doc: RawDocument): ManifestObject {
  const { kind, where, raw } = identifyDocument(doc);
  const rest = { ...raw };
  delete rest.apiVersion;
  delete rest.kind;
  let object: ApiObject;
  try {
    object = fromJson(kind.schema, toProtoJson(kind.schema, rest)) as ApiObject;
  } catch (err) {
    // ManifestFieldError names the field; fromJson's own errors are a last line of defence.
    throw new ManifestError(`${where}: ${(err as Error).message}`);
  }
  return { kind, object, where };
}

export interface DecodedDocuments {
  objects: ManifestObject[];
  /** One message per document that cannot be applied, starting with where it is. */
  failures: string[];
}

/**
 * Decodes every document on its own, as kubectl does: a document of an unknown kind or with
 * unsupported fields is a failure of its own, and the others still apply.
 */
export function decodeDocuments(docs: RawDocument[]): DecodedDocuments {
  const objects: ManifestObject[] = [];
  const failures: string[] = [];
  for (const d of docs) {
    try {
      objects.push(decodeDocument(d));
    } catch (err) {
      if (!(err instanceof ManifestError)) throw err;
      failures.push(err.message);
    }
  }
  return { objects, failures };
}

/** Namespaces first (so the rest can go into them), otherwise in file order. */
export function namespacesFirst(objs: ManifestObject[]): ManifestObject[] {
  return [...objs.filter((o) => o.kind.kind === "Namespace"), ...objs.filter((o) => o.kind.kind !== "Namespace")];
}

/**
 * The namespace an object from a file goes to: its own, else -n, else "default"; cluster-scoped
 * kinds have none. A file's namespace that contradicts -n is an error, as in kubectl.
 */
export function targetNamespace(kind: Kind, fileNamespace: string, flag: string | undefined, where: string): string {
  if (!kind.namespaced) return "";
  if (fileNamespace && flag && fileNamespace !== flag) {
    throw new ManifestError(`${where}: the namespace in the file ("${fileNamespace}") does not match -n "${flag}"`);
  }
  return fileNamespace || flag || "default";
}
