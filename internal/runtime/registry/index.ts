// The OCI/Docker registry v2 pull client. See README.md.

export { pullToSink, type PullResult, type PullToSinkOptions } from "./pull.ts";
export { parseReference, apiHost, type ImageReference } from "./reference.ts";
export { RegistryError, isRegistryError, type RegistryErrorReason, type RegistryErrorDetail } from "./errors.ts";
export { MEDIA_TYPES, DEFAULT_PLATFORM, GC_LABELS, type Platform } from "./manifest.ts";
export { createMemorySink, type MemorySink, type StoredBlob } from "./memory-sink.ts";
export type { BlobDescriptor, BlobSink } from "../containerd/content.ts";
