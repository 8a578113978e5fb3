// Images built from Debian's busybox-static (no image can be downloaded on these machines), for
// tests and for the example app of `skiff up`: an OCI image layout directory (what
// `skopeo copy oci:<dir>:<tag>` reads) and the same layout as a tarball (what
// ContainerRuntime.importImage reads).
//
// Two layers: the busybox base (/bin/busybox, applet symlinks, /etc/passwd, …) and a small top
// layer with /www/index.html, so images that differ only in their page (v1/v2) share the base
// layer and its snapshot. Deterministic: fixed mtimes, uid/gid 0, sorted entries, so the same
// options give the same digests.

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { gzipSync } from "node:zlib";
import tar from "tar-stream";

export const BUSYBOX_BIN = process.env.SKIFF_BUSYBOX_BIN ?? "/bin/busybox";

/** Applets linked in /bin (busybox-static has them all built in). */
export const APPLETS = [
  "sh", "ash", "cat", "chmod", "cp", "date", "dd", "echo", "env", "false", "grep", "head", "hostname",
  "httpd", "id", "ip", "kill", "ln", "ls", "mkdir", "mv", "nc", "nslookup", "ps", "pwd", "rm", "sed",
  "seq", "sleep", "sync", "tail", "test", "top", "touch", "true", "uname", "wc", "wget", "yes",
];

export interface BusyboxImageOptions {
  /** Repository, e.g. "skiff.test/busybox". */
  name: string;
  tag: string;
  /** Content of /www/index.html; default names the image. */
  indexHtml?: string;
  entrypoint?: string[];
  /** Default: httpd in the foreground serving /www on port 80. */
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  /** The image's USER ("nobody", "65534:65534", …); default none (root). */
  user?: string;
  /**
   * Absolute host paths copied into the top layer at the same path (symlinks followed), e.g. a
   * dynamically linked binary and the libraries `ldd` lists for it.
   */
  hostFiles?: string[];
}

export interface BuiltImage {
  /** Full reference, name:tag. */
  ref: string;
  /** OCI layout directory. */
  layoutDir: string;
  /** The layout as a tar archive. */
  tarPath: string;
  manifestDigest: string;
  /** The image ID. */
  configDigest: string;
  /** Uncompressed layer digests, bottom first. */
  diffIds: string[];
}

const MTIME = new Date("2024-01-01T00:00:00Z");

interface FileSpec {
  name: string;
  type: "file" | "directory" | "symlink";
  mode: number;
  data?: Buffer;
  linkname?: string;
}

async function tarOf(entries: FileSpec[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of [...entries].sort((a, b) => a.name.localeCompare(b.name))) {
    const header = { name: e.name, type: e.type, mode: e.mode, uid: 0, gid: 0, uname: "root", gname: "root", mtime: MTIME };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (e.type === "file") pack.entry({ ...header, size: e.data?.length ?? 0 }, e.data ?? Buffer.alloc(0), cb);
      else if (e.type === "symlink") pack.entry({ ...header, linkname: e.linkname }, cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

function baseLayer(): FileSpec[] {
  const dir = (name: string, mode = 0o755): FileSpec => ({ name, type: "directory", mode });
  return [
    ...["bin", "dev", "etc", "proc", "root", "sys", "www", "var"].map((d) => dir(`${d}/`)),
    dir("tmp/", 0o1777),
    { name: "bin/busybox", type: "file", mode: 0o755, data: readFileSync(BUSYBOX_BIN) },
    ...APPLETS.map((a): FileSpec => ({ name: `bin/${a}`, type: "symlink", mode: 0o777, linkname: "busybox" })),
    { name: "etc/passwd", type: "file", mode: 0o644, data: Buffer.from("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n") },
    { name: "etc/group", type: "file", mode: 0o644, data: Buffer.from("root:x:0:\nnogroup:x:65534:\n") },
  ];
}

/** The files and, once each, their parent directories (the layer must create them). */
function hostFileEntries(paths: string[]): FileSpec[] {
  const dirs = new Set<string>();
  const files = paths.map((p): FileSpec => {
    if (!isAbsolute(p)) throw new Error(`hostFiles: ${p} is not an absolute path`);
    const name = p.slice(1);
    for (let d = dirname(name); d !== "."; d = dirname(d)) dirs.add(`${d}/`);
    return { name, type: "file", mode: statSync(p).mode & 0o777, data: readFileSync(p) };
  });
  return [...[...dirs].map((name): FileSpec => ({ name, type: "directory", mode: 0o755 })), ...files];
}

/** Builds the image under `dir` (created if missing): `<dir>/layout/` and `<dir>/<name>-<tag>.tar`. */
export async function buildBusyboxImage(dir: string, opts: BusyboxImageOptions): Promise<BuiltImage> {
  const ref = `${opts.name}:${opts.tag}`;
  const layoutDir = join(dir, "layout");
  mkdirSync(join(layoutDir, "blobs", "sha256"), { recursive: true });
  const blobs = new Map<string, Buffer>();
  const put = (bytes: Buffer) => {
    const digest = sha256(bytes);
    blobs.set(digest, bytes);
    writeFileSync(join(layoutDir, "blobs", "sha256", digest.slice("sha256:".length)), bytes);
    return { digest, size: bytes.length };
  };

  const html = opts.indexHtml ?? `<html><body>${ref}</body></html>\n`;
  const layers = [
    await tarOf(baseLayer()),
    await tarOf([{ name: "www/index.html", type: "file", mode: 0o644, data: Buffer.from(html) }, ...hostFileEntries(opts.hostFiles ?? [])]),
  ];
  const diffIds = layers.map(sha256);
  const layerDescs = layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...put(gzipSync(l)) }));

  const config = {
    created: MTIME.toISOString(),
    architecture: "amd64",
    os: "linux",
    config: {
      Env: opts.env ?? ["PATH=/bin"],
      Entrypoint: opts.entrypoint ?? [],
      Cmd: opts.cmd ?? ["httpd", "-f", "-p", "80", "-h", "/www"],
      WorkingDir: opts.workingDir ?? "/",
      ...(opts.user ? { User: opts.user } : {}),
    },
    rootfs: { type: "layers", diff_ids: diffIds },
  };
  const configDesc = { mediaType: "application/vnd.oci.image.config.v1+json", ...put(Buffer.from(JSON.stringify(config))) };
  const manifest = { schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: configDesc, layers: layerDescs };
  const manifestDesc = { mediaType: manifest.mediaType, ...put(Buffer.from(JSON.stringify(manifest))) };

  const index = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      {
        ...manifestDesc,
        annotations: { "io.containerd.image.name": ref, "org.opencontainers.image.ref.name": opts.tag },
        platform: { architecture: "amd64", os: "linux" },
      },
    ],
  };
  const indexBytes = Buffer.from(JSON.stringify(index));
  const layoutBytes = Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(layoutDir, "index.json"), indexBytes);
  writeFileSync(join(layoutDir, "oci-layout"), layoutBytes);

  const tarPath = join(dir, `${opts.name.replace(/[^a-z0-9]+/g, "-")}-${opts.tag}.tar`);
  writeFileSync(
    tarPath,
    await tarOf([
      { name: "oci-layout", type: "file", mode: 0o644, data: layoutBytes },
      { name: "index.json", type: "file", mode: 0o644, data: indexBytes },
      { name: "blobs/", type: "directory", mode: 0o755 },
      { name: "blobs/sha256/", type: "directory", mode: 0o755 },
      ...[...blobs].map(([d, b]): FileSpec => ({ name: `blobs/sha256/${d.slice(7)}`, type: "file", mode: 0o644, data: b })),
    ]),
  );
  return { ref, layoutDir, tarPath, manifestDigest: manifestDesc.digest, configDigest: configDesc.digest, diffIds };
}
