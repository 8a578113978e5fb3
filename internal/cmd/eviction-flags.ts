// The node agent's pressure flags (the kubelet's names), shared by `skiff agent` and `skiff up`.
import type { AgentEvictionOptions } from "../agent/agent.ts";
import { checkImageGcPolicy, DEFAULT_IMAGE_GC } from "../agent/eviction/image-gc.ts";
import { DEFAULT_EVICTION_HARD, parseEvictionHard } from "../agent/eviction/thresholds.ts";

export const evictionArgs = {
  "eviction-hard": {
    type: "string",
    description: `Hard eviction thresholds, SIGNAL<QUANTITY or SIGNAL<PERCENT%, comma-separated; unnamed signals keep their default, SIGNAL<0 turns one off (default ${DEFAULT_EVICTION_HARD})`,
    valueHint: "LIST",
  },
  "image-gc-high-threshold": { type: "string", description: "Percent of the image filesystem in use above which unused images are removed", default: String(DEFAULT_IMAGE_GC.highPercent) },
  "image-gc-low-threshold": { type: "string", description: "Percent of the image filesystem image garbage collection frees down to", default: String(DEFAULT_IMAGE_GC.lowPercent) },
  "image-fs-dir": { type: "string", description: "containerd's root directory: the image filesystem for imagefs.* thresholds and image GC", default: "/var/lib/containerd" },
} as const;

type Args = { [K in keyof typeof evictionArgs]?: string };

function percentFlag(flag: string, v: string | undefined, fallback: number): number {
  if (v === undefined || v === "") return fallback;
  if (!/^\d+$/.test(v)) throw new Error(`--${flag} must be a whole percent from 0 to 100, got "${v}"`);
  return Number(v);
}

/** The agent's eviction options the flags ask for; bad values stop the agent before it starts. */
export function evictionOptions(args: Args, imageFsDir?: string): AgentEvictionOptions {
  return {
    thresholds: parseEvictionHard(args["eviction-hard"] ?? ""),
    imageGc: checkImageGcPolicy({
      highPercent: percentFlag("image-gc-high-threshold", args["image-gc-high-threshold"], DEFAULT_IMAGE_GC.highPercent),
      lowPercent: percentFlag("image-gc-low-threshold", args["image-gc-low-threshold"], DEFAULT_IMAGE_GC.lowPercent),
    }),
    imageFsDir: imageFsDir ?? (args["image-fs-dir"] || undefined),
  };
}
