// containerd runtime: see README.md.
export { createContainerdRuntime, type ContainerdRuntime, type ContainerdRuntimeOptions } from "./runtime.ts";
export { createContainerdClient, DEFAULT_ADDRESS, DEFAULT_NAMESPACE, type ContainerdClient, type Services } from "./client.ts";
export { createContentStore, type BlobDescriptor, type BlobSink, type ContentStore } from "./content.ts";
export { LABELS } from "./containers.ts";
