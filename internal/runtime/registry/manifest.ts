// Manifests and indexes (Docker v2 schema 2 and OCI image spec): media types, parsing with
// validation of every descriptor, choosing the platform's manifest from an index, and the
// containerd GC labels that tie a parent blob to its children.

import type { BlobDescriptor } from "../containerd/content.ts";
import { RegistryError } from "./errors.ts";
import { parseDigest } from "./reference.ts";

export const MEDIA_TYPES = {
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
} as const;

/** The Accept header of a manifest GET: everything we can pull, no schema 1. */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifest,
].join(", ");

/** Largest manifest or index we read (containerd allows 4 MiB too). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export const DEFAULT_PLATFORM: Platform = { os: "linux", architecture: "amd64" };

export interface PlatformDescriptor extends BlobDescriptor {
  platform?: Platform;
}

export type ParsedManifest =
  | { kind: "index"; mediaType: string; manifests: PlatformDescriptor[] }
  | { kind: "manifest"; mediaType: string; config: BlobDescriptor; layers: BlobDescriptor[] };

export function isIndexType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerManifestList;
}

export function isManifestType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.ociManifest || mediaType === MEDIA_TYPES.dockerManifest;
}

function bad(what: string, why: string): RegistryError {
  return new RegistryError("BadManifest", `${what}: ${why}`);
}

function descriptor(raw: unknown, what: string, where: string): PlatformDescriptor {
  if (!raw || typeof raw !== "object") throw bad(what, `${where} is not a descriptor`);
  const d = raw as Record<string, unknown>;
  if (typeof d.mediaType !== "string" || !d.mediaType) throw bad(what, `${where} has no mediaType`);
  if (typeof d.digest !== "string") throw bad(what, `${where} has no digest`);
  try {
    parseDigest(d.digest);
  } catch {
    throw bad(what, `${where} has a bad digest "${d.digest}"`);
  }
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw bad(what, `${where} has a bad size`);
  }
  const out: PlatformDescriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.annotations && typeof d.annotations === "object") {
    const annotations: Record<string, string> = {};
    for (const [k, v] of Object.entries(d.annotations)) if (typeof v === "string") annotations[k] = v;
    out.annotations = annotations;
  }
  const p = d.platform as Record<string, unknown> | undefined;
  if (p && typeof p === "object" && typeof p.os === "string" && typeof p.architecture === "string") {
    out.platform = { os: p.os, architecture: p.architecture };
    if (typeof p.variant === "string" && p.variant) out.platform.variant = p.variant;
  }
  return out;
}

/**
 * Parses manifest or index bytes. `contentType` is the response's Content-Type (or the
 * descriptor's mediaType); when it is not one of ours, the JSON's own mediaType decides, and
 * without one the shape does (OCI made mediaType optional).
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined, what: string): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw bad(what, "not valid JSON");
  }
  if (!json || typeof json !== "object" || Array.isArray(json)) throw bad(what, "not a JSON object");
  const m = json as Record<string, unknown>;
  const declared = typeof m.mediaType === "string" ? m.mediaType : undefined;
  const header = contentType?.split(";")[0].trim().toLowerCase();
  if (
    m.schemaVersion === 1 ||
    header === MEDIA_TYPES.dockerSchema1 ||
    header === MEDIA_TYPES.dockerSchema1Signed ||
    declared === MEDIA_TYPES.dockerSchema1 ||
    declared === MEDIA_TYPES.dockerSchema1Signed
  ) {
    throw bad(what, "Docker schema 1 manifests are not supported (push the image again with a current client)");
  }
  let mediaType: string;
  if (header && (isIndexType(header) || isManifestType(header))) mediaType = header;
  else if (declared) mediaType = declared;
  else if (Array.isArray(m.manifests)) mediaType = MEDIA_TYPES.ociIndex;
  else if (m.config !== undefined) mediaType = MEDIA_TYPES.ociManifest;
  else throw bad(what, `unknown manifest (Content-Type ${contentType ?? "none"}, no mediaType)`);
  if (declared && declared !== mediaType) {
    throw bad(what, `mediaType "${declared}" in the body differs from "${mediaType}"`);
  }
  if (m.schemaVersion !== 2) throw bad(what, `schemaVersion ${JSON.stringify(m.schemaVersion)}, want 2`);

  if (isIndexType(mediaType)) {
    if (!Array.isArray(m.manifests)) throw bad(what, "index has no manifests array");
    const manifests = m.manifests.map((d, i) => descriptor(d, what, `manifests[${i}]`));
    return { kind: "index", mediaType, manifests };
  }
  if (isManifestType(mediaType)) {
    const config = descriptor(m.config, what, "config");
    if (!Array.isArray(m.layers)) throw bad(what, "manifest has no layers array");
    const layers = m.layers.map((d, i) => descriptor(d, what, `layers[${i}]`));
    delete (config as PlatformDescriptor).platform;
    for (const l of layers) delete l.platform;
    return { kind: "manifest", mediaType, config, layers };
  }
  throw bad(what, `unsupported media type "${mediaType}"`);
}

const ARCH_ALIASES: Record<string, string> = { x86_64: "amd64", "x86-64": "amd64", aarch64: "arm64" };

function normalize(p: Platform): Platform {
  const architecture = ARCH_ALIASES[p.architecture] ?? p.architecture;
  let variant = p.variant;
  if (architecture === "arm64" && variant === "v8") variant = undefined;
  if (architecture === "amd64" && variant === "v1") variant = undefined;
  return { os: p.os.toLowerCase(), architecture, ...(variant ? { variant } : {}) };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

/**
 * The manifest of `platform` in an index: same os and architecture; when the wanted platform
 * names a variant, an entry with that variant wins over one without. Entries without a
 * platform (e.g. attestations) never match. Throws NotFound listing what the index has.
 */
export function selectPlatform(manifests: PlatformDescriptor[], platform: Platform, what: string): PlatformDescriptor {
  const want = normalize(platform);
  const candidates = manifests.filter((d) => {
    if (!d.platform) return false;
    const have = normalize(d.platform);
    if (have.os !== want.os || have.architecture !== want.architecture) return false;
    return !have.variant || !want.variant || have.variant === want.variant;
  });
  const exact = candidates.find((d) => normalize(d.platform as Platform).variant === want.variant);
  const chosen = exact ?? candidates[0];
  if (chosen) return chosen;
  const available = manifests.filter((d) => d.platform).map((d) => formatPlatform(d.platform as Platform));
  throw new RegistryError(
    "NotFound",
    `${what}: no manifest for platform ${formatPlatform(want)} (index has ${available.length ? [...new Set(available)].join(", ") : "no platforms"})`,
  );
}

export const GC_LABELS = {
  manifest: (i: number) => `containerd.io/gc.ref.content.m.${i}`,
  config: "containerd.io/gc.ref.content.config",
  layer: (i: number) => `containerd.io/gc.ref.content.l.${i}`,
  /** containerd keys it by the registry's hostname without port or IPv6 brackets (Go's url.Hostname). */
  distributionSource: (domain: string) => `containerd.io/distribution.source.${hostnameOf(domain)}`,
} as const;

function hostnameOf(domain: string): string {
  if (domain.startsWith("[")) return domain.slice(1, domain.indexOf("]"));
  const colon = domain.indexOf(":");
  return colon === -1 ? domain : domain.slice(0, colon);
}

/** GC labels of an index (every child, as containerd labels them) or of a manifest. */
export function childLabels(parsed: ParsedManifest): Record<string, string> {
  const labels: Record<string, string> = {};
  if (parsed.kind === "index") {
    parsed.manifests.forEach((d, i) => (labels[GC_LABELS.manifest(i)] = d.digest));
  } else {
    labels[GC_LABELS.config] = parsed.config.digest;
    parsed.layers.forEach((d, i) => (labels[GC_LABELS.layer(i)] = d.digest));
  }
  return labels;
}

/** A descriptor without its platform, as written to the sink. */
export function plain(d: PlatformDescriptor): BlobDescriptor {
  const out: BlobDescriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.annotations) out.annotations = d.annotations;
  return out;
}
