// A small v2 registry on node:http for unit tests of the pull client: manifests and blobs from
// memory, anonymous / Basic / Bearer-token auth (token endpoint on the same server), blobs
// served directly or through a redirect (same origin, or a second "blob store" server like a
// CDN), and switches to serve wrong bytes. Every request is recorded.
// The real registry (Debian docker-registry) is exercised by test/registry.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { BlobDescriptor } from "../containerd/content.ts";
import { digestOf } from "./digest.ts";
import { MEDIA_TYPES, type Platform } from "./manifest.ts";

export type FakeAuth =
  | { kind: "none" }
  | { kind: "basic"; username: string; password: string }
  /** Bearer tokens from /token; with username/password the token endpoint wants them (Basic). */
  | { kind: "bearer"; username?: string; password?: string };

export interface FakeRegistryOptions {
  auth?: FakeAuth;
  /** Answer blob GETs with a 307 to /_store (same origin) or to a second server (cross origin). */
  blobRedirect?: "none" | "same-origin" | "cross-origin";
}

export interface RecordedRequest {
  server: "registry" | "store";
  method: string;
  path: string;
  authorization?: string;
}

export interface FakeImage {
  manifest: BlobDescriptor;
  config: BlobDescriptor;
  layers: BlobDescriptor[];
}

export interface FakeRegistry {
  /** e.g. "127.0.0.1:40123" */
  host: string;
  requests: RecordedRequest[];
  /** Tokens handed out by /token. */
  tokensIssued: number;
  addBlob(bytes: Uint8Array, mediaType: string): BlobDescriptor;
  /** Stores a manifest under its digest, and under `tag` when given. */
  putManifest(repo: string, tag: string | undefined, body: unknown, mediaType: string): BlobDescriptor;
  /** A single-platform image with `layers` random layers (OCI media types unless docker). */
  addImage(repo: string, tag: string | undefined, opts?: { layers?: number; docker?: boolean; platform?: Platform }): FakeImage;
  /** An index (or Docker manifest list) over one image per platform. */
  addIndex(repo: string, tag: string, platforms: Platform[], opts?: { docker?: boolean }): { index: BlobDescriptor; images: FakeImage[] };
  /** Serve these bytes instead of the stored ones (same length, one byte changed). */
  corrupt(digest: string): void;
  close(): Promise<void>;
}

interface Stored {
  bytes: Uint8Array;
  mediaType: string;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

function v2Error(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  json(res, status, { errors: [{ code, message, detail: null }] }, headers);
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(`127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

export async function startFakeRegistry(opts: FakeRegistryOptions = {}): Promise<FakeRegistry> {
  const auth = opts.auth ?? { kind: "none" };
  const blobs = new Map<string, Stored>();
  const manifests = new Map<string, Stored>(); // key: repo@digest and repo:tag
  const corrupted = new Set<string>();
  const requests: RecordedRequest[] = [];
  const tokens = new Set<string>();
  let tokensIssued = 0;
  let host = "";
  let storeHost = "";

  const serveBytes = (res: ServerResponse, stored: Stored, digest: string, head: boolean) => {
    let bytes = stored.bytes;
    if (corrupted.has(digest) && bytes.byteLength > 0) {
      bytes = Buffer.from(bytes);
      bytes[bytes.byteLength - 1] ^= 0xff;
    }
    res.writeHead(200, {
      "content-type": stored.mediaType,
      "content-length": bytes.byteLength,
      "docker-content-digest": digest,
    });
    res.end(head ? undefined : bytes);
  };

  const basicOk = (req: IncomingMessage, username?: string, password?: string) =>
    req.headers.authorization === `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;

  const authorized = (req: IncomingMessage, res: ServerResponse, repo: string): boolean => {
    const header = req.headers.authorization;
    if (auth.kind === "none") return true;
    if (auth.kind === "basic") {
      if (basicOk(req, auth.username, auth.password)) return true;
      v2Error(res, 401, "UNAUTHORIZED", "authentication required", { "www-authenticate": 'Basic realm="fake-realm"' });
      return false;
    }
    if (header?.startsWith("Bearer ") && tokens.has(header.slice(7))) return true;
    v2Error(res, 401, "UNAUTHORIZED", "authentication required", {
      "www-authenticate": `Bearer realm="http://${host}/token",service="fake-registry",scope="repository:${repo}:pull"`,
    });
    return false;
  };

  const handleToken = (req: IncomingMessage, res: ServerResponse, url: URL) => {
    if (auth.kind !== "bearer") return v2Error(res, 404, "NOT_FOUND", "no token endpoint");
    if (auth.username !== undefined && !basicOk(req, auth.username, auth.password)) {
      return json(res, 401, { details: "incorrect username or password" });
    }
    if (url.searchParams.get("service") !== "fake-registry" || !url.searchParams.getAll("scope").length) {
      return json(res, 400, { details: "missing service or scope" });
    }
    const token = `tok-${++tokensIssued}`;
    tokens.add(token);
    json(res, 200, { token, expires_in: 300 });
  };

  const registry = createServer((req, res) => {
    const url = new URL(req.url ?? "/", `http://${host}`);
    requests.push({ server: "registry", method: req.method ?? "", path: url.pathname + url.search, authorization: req.headers.authorization });
    if (url.pathname === "/token") return handleToken(req, res, url);
    const storeMatch = /^\/_store\/(.+)$/.exec(url.pathname);
    if (storeMatch) {
      const stored = blobs.get(storeMatch[1]);
      return stored ? serveBytes(res, stored, storeMatch[1], false) : v2Error(res, 404, "BLOB_UNKNOWN", "not in store");
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!m) return v2Error(res, 404, "NOT_FOUND", "no route");
    const [, repo, kind, ref] = m;
    if (!authorized(req, res, repo)) return;
    const head = req.method === "HEAD";
    if (kind === "manifests") {
      const key = ref.includes(":") ? `${repo}@${ref}` : `${repo}:${ref}`;
      const stored = manifests.get(key);
      if (!stored) return v2Error(res, 404, "MANIFEST_UNKNOWN", "manifest unknown");
      const accept = String(req.headers.accept ?? "");
      if (!accept.includes(stored.mediaType)) {
        return v2Error(res, 404, "MANIFEST_UNKNOWN", `OCI manifest found, but accept header does not support ${stored.mediaType}`);
      }
      return serveBytes(res, stored, digestOf(stored.bytes), head);
    }
    const stored = blobs.get(ref);
    if (!stored) return v2Error(res, 404, "BLOB_UNKNOWN", "blob unknown to registry");
    if (opts.blobRedirect === "same-origin" || opts.blobRedirect === "cross-origin") {
      const target = opts.blobRedirect === "same-origin" ? `/_store/${ref}` : `http://${storeHost}/_store/${ref}`;
      res.writeHead(307, { location: target, "content-length": 0 });
      return res.end();
    }
    serveBytes(res, stored, ref, head);
  });

  const store = createServer((req, res) => {
    const url = new URL(req.url ?? "/", `http://${storeHost}`);
    requests.push({ server: "store", method: req.method ?? "", path: url.pathname, authorization: req.headers.authorization });
    const digest = url.pathname.replace(/^\/_store\//, "");
    const stored = blobs.get(digest);
    if (!stored) return v2Error(res, 404, "BLOB_UNKNOWN", "not in store");
    serveBytes(res, stored, digest, false);
  });

  host = await listen(registry);
  if (opts.blobRedirect === "cross-origin") storeHost = await listen(store);

  const addBlob = (bytes: Uint8Array, mediaType: string): BlobDescriptor => {
    const digest = digestOf(bytes);
    blobs.set(digest, { bytes, mediaType });
    return { mediaType, digest, size: bytes.byteLength };
  };

  const putManifest = (repo: string, tag: string | undefined, body: unknown, mediaType: string): BlobDescriptor => {
    const bytes = Buffer.from(typeof body === "string" ? body : JSON.stringify(body, null, 2));
    const digest = digestOf(bytes);
    const stored = { bytes, mediaType };
    manifests.set(`${repo}@${digest}`, stored);
    if (tag !== undefined) manifests.set(`${repo}:${tag}`, stored);
    return { mediaType, digest, size: bytes.byteLength };
  };

  const addImage: FakeRegistry["addImage"] = (repo, tag, o = {}) => {
    const platform = o.platform ?? { os: "linux", architecture: "amd64" };
    const layerType = o.docker ? "application/vnd.docker.image.rootfs.diff.tar.gzip" : "application/vnd.oci.image.layer.v1.tar+gzip";
    const layers = Array.from({ length: o.layers ?? 2 }, (_, i) =>
      addBlob(Buffer.from(`layer ${i} of ${repo}:${tag} for ${platform.architecture} ${Math.random()}`), layerType),
    );
    const config = addBlob(
      Buffer.from(JSON.stringify({ ...platform, rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) } })),
      o.docker ? "application/vnd.docker.container.image.v1+json" : "application/vnd.oci.image.config.v1+json",
    );
    const mediaType = o.docker ? MEDIA_TYPES.dockerManifest : MEDIA_TYPES.ociManifest;
    const manifest = putManifest(repo, tag, { schemaVersion: 2, mediaType, config, layers }, mediaType);
    return { manifest, config, layers };
  };

  const addIndex: FakeRegistry["addIndex"] = (repo, tag, platforms, o = {}) => {
    const images = platforms.map((platform) => addImage(repo, undefined, { docker: o.docker, platform }));
    const mediaType = o.docker ? MEDIA_TYPES.dockerManifestList : MEDIA_TYPES.ociIndex;
    const body = {
      schemaVersion: 2,
      mediaType,
      manifests: images.map((img, i) => ({ ...img.manifest, platform: platforms[i] })),
    };
    return { index: putManifest(repo, tag, body, mediaType), images };
  };

  const close = (s: Server) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()));

  return {
    host,
    requests,
    get tokensIssued() {
      return tokensIssued;
    },
    addBlob,
    putManifest,
    addImage,
    addIndex,
    corrupt: (digest) => corrupted.add(digest),
    async close() {
      registry.closeAllConnections();
      store.closeAllConnections();
      await Promise.all([close(registry), close(store)]);
    },
  };
}
