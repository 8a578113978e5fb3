// Image references, parsed and normalized the way Docker (distribution/reference
// ParseNormalizedNamed) and containerd (ParseDockerRef) do:
//
//   busybox                      → docker.io/library/busybox:latest
//   user/app                     → docker.io/user/app:latest
//   host:5000/ns/app:v1          → host:5000/ns/app:v1
//   localhost/app                → localhost/app:latest
//   app@sha256:<64 hex>          → docker.io/library/app@sha256:<64 hex>
//   app:v1@sha256:<64 hex>       → docker.io/library/app@sha256:<64 hex>  (containerd drops the tag)
//
// The first path component is a registry host when it contains "." or ":", is "localhost", or
// has upper-case letters; otherwise the image is on Docker Hub.

import { RegistryError } from "./errors.ts";

export interface ImageReference {
  /** Registry host as written in the name, e.g. "docker.io", "localhost:5000", "[::1]:5000". */
  domain: string;
  /** Repository path on the registry, e.g. "library/busybox". */
  path: string;
  tag?: string;
  digest?: string;
  /** domain/path, e.g. "docker.io/library/busybox". */
  repository: string;
  /** The canonical name containerd stores the image under: repository@digest, else repository:tag. */
  name: string;
}

export const DEFAULT_DOMAIN = "docker.io";
const LEGACY_DEFAULT_DOMAIN = "index.docker.io";
/** Where Docker Hub's v2 API actually lives. */
const DOCKER_HUB_API_HOST = "registry-1.docker.io";
const OFFICIAL_REPO_PREFIX = "library/";
const NAME_TOTAL_LENGTH_MAX = 255;

// The grammar of distribution/reference (regexp.go).
const ALPHA_NUMERIC = "[a-z0-9]+";
const SEPARATOR = "(?:[._]|__|[-]+)";
const PATH_COMPONENT = `${ALPHA_NUMERIC}(?:${SEPARATOR}${ALPHA_NUMERIC})*`;
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
const IPV6 = "\\[[a-fA-F0-9:]+\\]";
const DOMAIN = `(?:${DOMAIN_NAME}|${IPV6})(?::[0-9]+)?`;
const TAG = "[\\w][\\w.-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";

const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const PATH_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const DIGEST_RE = new RegExp(`^${DIGEST}$`);
const HEX64_RE = /^[a-f0-9]{64}$/;

/** Hex lengths of the digest algorithms we can verify. */
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

function invalid(ref: string, why: string): RegistryError {
  return new RegistryError("InvalidReference", `invalid image reference "${ref}": ${why}`);
}

/** Validates "algo:hex" and returns it; throws InvalidReference for anything else. */
export function parseDigest(digest: string, context = digest): string {
  if (!DIGEST_RE.test(digest)) throw invalid(context, `bad digest "${digest}"`);
  const [algo, hex] = digest.split(":");
  const want = DIGEST_HEX_LENGTH[algo];
  if (want === undefined) throw invalid(context, `unsupported digest algorithm "${algo}"`);
  if (hex.length !== want || hex !== hex.toLowerCase()) {
    throw invalid(context, `digest "${digest}" must be ${want} lower-case hex characters`);
  }
  return digest;
}

function splitDomain(name: string): { domain: string; remainder: string } {
  const i = name.indexOf("/");
  let domain: string;
  let remainder: string;
  const first = i === -1 ? "" : name.slice(0, i);
  if (i === -1 || (!/[.:]/.test(first) && first !== "localhost" && first.toLowerCase() === first)) {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  } else {
    domain = first;
    remainder = name.slice(i + 1);
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes("/")) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return { domain, remainder };
}

/** Parses and normalizes an image reference; throws a RegistryError (InvalidReference). */
export function parseReference(ref: string): ImageReference {
  if (ref === "") throw invalid(ref, "empty reference");
  if (ref.trim() !== ref) throw invalid(ref, "leading or trailing whitespace");
  if (HEX64_RE.test(ref)) throw invalid(ref, "a 64-character hexadecimal string is an image ID, not a name");

  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = parseDigest(rest.slice(at + 1), ref);
    rest = rest.slice(0, at);
  }

  const { domain, remainder } = splitDomain(rest);
  // A ":" after the last "/" starts the tag (a ":" before it is the registry port).
  let path = remainder;
  let tag: string | undefined;
  const colon = remainder.lastIndexOf(":");
  if (colon !== -1 && colon > remainder.lastIndexOf("/")) {
    path = remainder.slice(0, colon);
    tag = remainder.slice(colon + 1);
    if (!TAG_RE.test(tag)) {
      throw invalid(ref, `bad tag "${tag}" (letters, digits, "_", "." and "-", at most 128, not starting with "." or "-")`);
    }
  }

  if (path === "") throw invalid(ref, "missing repository name");
  if (path.toLowerCase() !== path) throw invalid(ref, `repository name "${path}" must be lowercase`);
  if (!DOMAIN_RE.test(domain)) throw invalid(ref, `bad registry host "${domain}"`);
  if (!PATH_RE.test(path)) {
    throw invalid(
      ref,
      `bad repository name "${path}" (lower-case letters and digits, separated by ".", "_", "__", "-" or "/")`,
    );
  }
  const repository = `${domain}/${path}`;
  if (repository.length > NAME_TOTAL_LENGTH_MAX) {
    throw invalid(ref, `repository name longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }

  if (digest === undefined && tag === undefined) tag = "latest";
  const name = digest !== undefined ? `${repository}@${digest}` : `${repository}:${tag}`;
  const parsed: ImageReference = { domain, path, repository, name };
  if (tag !== undefined) parsed.tag = tag;
  if (digest !== undefined) parsed.digest = digest;
  return parsed;
}

/** The host:port to speak the v2 API to (Docker Hub's names map to registry-1.docker.io). */
export function apiHost(domain: string): string {
  return domain === DEFAULT_DOMAIN ? DOCKER_HUB_API_HOST : domain;
}

/** What to ask for in /v2/<path>/manifests/<ref>: the digest when given, else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? "latest";
}
