// Images without a registry (`skiff agent --import-images PATH`): PATH is one OCI layout tarball
// or a directory of them (`*.tar`, not recursive). The agent imports them into the runtime when it
// starts, before any pod is synced, and scans again every 10 s for files that are new or changed
// (by mtime and size). Pods use them with `imagePullPolicy: Never` (or IfNotPresent).
//
//   scan ─► stat PATH ─► file: [PATH] · dir: *.tar in it, by name
//        ─► each whose (mtime, size) differs from the last import ─► runtime.importImage
//   a failed file is tried again at every scan (it may still have been copied in) and
//   reported once per version of it; a removed file is forgotten (its images stay).
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../log/log.ts";
import type { ContainerRuntime, ImageInfo } from "../runtime/runtime.ts";

export interface ImageImporter {
  readonly path: string;
  /**
   * Imports the tarballs that are new or changed since the last scan; returns the images
   * imported. Throws only when PATH itself cannot be read (a bad tarball is logged, not thrown).
   */
  scan(): Promise<ImageInfo[]>;
}

interface Seen {
  version: string;
  ok: boolean;
}

/** The tarballs PATH names: itself when a file, else the `*.tar` files directly in it. */
export async function tarballsAt(path: string): Promise<{ file: string; version: string }[]> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new Error(`image import path ${path}: no such file or directory`, { cause: err });
    throw new Error(`image import path ${path}: ${(err as Error).message}`, { cause: err });
  }
  const version = (s: { mtimeMs: number; size: number }) => `${s.mtimeMs}/${s.size}`;
  if (!st.isDirectory()) return [{ file: path, version: version(st) }];
  const out: { file: string; version: string }[] = [];
  for (const name of (await readdir(path)).sort()) {
    if (!name.endsWith(".tar") || name.startsWith(".")) continue;
    const file = join(path, name);
    const s = await stat(file).catch(() => undefined); // removed meanwhile
    if (s?.isFile()) out.push({ file, version: version(s) });
  }
  return out;
}

export function createImageImporter(opts: { runtime: ContainerRuntime; path: string; log: Logger }): ImageImporter {
  const { runtime, path, log } = opts;
  const seen = new Map<string, Seen>();
  return {
    path,
    async scan() {
      const files = await tarballsAt(path);
      const present = new Set(files.map((f) => f.file));
      for (const file of seen.keys()) if (!present.has(file)) seen.delete(file);
      const imported: ImageInfo[] = [];
      for (const { file, version } of files) {
        const before = seen.get(file);
        if (before?.ok && before.version === version) continue;
        try {
          const images = await runtime.importImage(file);
          seen.set(file, { version, ok: true });
          imported.push(...images);
          log.info({ file, images: images.flatMap((i) => i.names) }, "imported images");
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          // Once per version of the file: it is tried again at every scan.
          if (before?.version !== version) log.warn({ file, err: message }, "could not import images; trying again at the next scan");
          seen.set(file, { version, ok: false });
        }
      }
      return imported;
    },
  };
}
