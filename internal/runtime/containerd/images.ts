// Image records (containerd's Images service: name → target descriptor) and resolving a target
// through the content store: index → this platform's manifest → config and layers.

import type { ImageInfo } from "../runtime.ts";
import { DEFAULT_PLATFORM, parseManifest, selectPlatform } from "../registry/manifest.ts";
import { parseReference } from "../registry/reference.ts";
import type { Services } from "./client.ts";
import type { BlobDescriptor, ContentStore } from "./content.ts";
import { ignoreNotFound, isAlreadyExists, orUndefined } from "./errors.ts";
import { parseImageConfig, type ImageConfigFile } from "./oci.ts";

export interface ImageRecord {
  name: string;
  target: BlobDescriptor;
}

/** An image resolved down to what running it needs. */
export interface ResolvedImage {
  /** The platform's manifest (the target itself when it is not an index). */
  manifest: BlobDescriptor;
  config: BlobDescriptor;
  layers: BlobDescriptor[];
  configFile: ImageConfigFile;
}

export interface ImageStore {
  get(name: string): Promise<ImageRecord | undefined>;
  list(): Promise<ImageRecord[]>;
  /** Creates the record, or points an existing one at the new target. */
  put(record: ImageRecord): Promise<void>;
  delete(name: string): Promise<void>;
  /** Content-addressed, so cached by target digest. */
  resolve(target: BlobDescriptor): Promise<ResolvedImage>;
}

const MAX_INDEX_DEPTH = 3;

/** The name containerd stores an image under ("busybox" → "docker.io/library/busybox:latest"). */
export function normalizeImageName(ref: string): string {
  return parseReference(ref).name;
}

function toDescriptor(d: { mediaType: string; digest: string; size: bigint; annotations: Record<string, string> } | undefined): BlobDescriptor {
  if (!d) throw new Error("image record without target");
  const out: BlobDescriptor = { mediaType: d.mediaType, digest: d.digest, size: Number(d.size) };
  if (Object.keys(d.annotations).length > 0) out.annotations = { ...d.annotations };
  return out;
}

function fromDescriptor(d: BlobDescriptor) {
  return { mediaType: d.mediaType, digest: d.digest, size: BigInt(d.size), annotations: d.annotations ?? {} };
}

export function createImageStore(svc: Pick<Services, "images">, content: ContentStore): ImageStore {
  const resolved = new Map<string, ResolvedImage>();

  const resolve: ImageStore["resolve"] = async (target) => {
    const cached = resolved.get(target.digest);
    if (cached) return cached;
    let desc = target;
    for (let depth = 0; ; depth++) {
      const parsed = parseManifest(await content.read(desc.digest), desc.mediaType, `manifest ${desc.digest}`);
      if (parsed.kind === "manifest") {
        const configFile = parseImageConfig(await content.read(parsed.config.digest), `config ${parsed.config.digest}`);
        if (configFile.diffIds.length !== parsed.layers.length) {
          throw new Error(`image ${target.digest}: ${parsed.layers.length} layers but ${configFile.diffIds.length} diff_ids`);
        }
        const out = { manifest: desc, config: parsed.config, layers: parsed.layers, configFile };
        resolved.set(target.digest, out);
        return out;
      }
      if (depth >= MAX_INDEX_DEPTH) throw new Error(`image ${target.digest}: indexes nested too deep`);
      const chosen = selectPlatform(parsed.manifests, DEFAULT_PLATFORM, `index ${desc.digest}`);
      desc = { mediaType: chosen.mediaType, digest: chosen.digest, size: chosen.size };
    }
  };

  return {
    async get(name) {
      const res = await orUndefined(() => svc.images.get({ name }));
      return res?.image ? { name: res.image.name, target: toDescriptor(res.image.target) } : undefined;
    },
    async list() {
      const res = await svc.images.list({});
      return res.images.map((i) => ({ name: i.name, target: toDescriptor(i.target) }));
    },
    async put({ name, target }) {
      const image = { name, target: fromDescriptor(target) };
      try {
        await svc.images.create({ image });
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        await svc.images.update({ image, updateMask: { paths: ["target"] } });
      }
    },
    delete: (name) => ignoreNotFound(() => svc.images.delete({ name, sync: false })),
    resolve,
  };
}

/** Groups records by image ID (config digest): one ImageInfo per image, with all its names. */
export async function imageInfos(store: ImageStore, records: ImageRecord[]): Promise<ImageInfo[]> {
  const byId = new Map<string, ImageInfo>();
  for (const r of records) {
    let img: ResolvedImage;
    try {
      img = await store.resolve(r.target);
    } catch {
      continue; // content missing (e.g. an unfinished pull by another client): not an image we can run
    }
    const id = img.config.digest;
    const existing = byId.get(id);
    if (existing) {
      existing.names.push(r.name);
      continue;
    }
    const sizeBytes = img.config.size + img.layers.reduce((n, l) => n + l.size, 0);
    byId.set(id, { names: [r.name], id, digest: r.target.digest, sizeBytes });
  }
  for (const info of byId.values()) info.names.sort();
  return [...byId.values()];
}
