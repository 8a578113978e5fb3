// containerd runtime: see README.md.
export { createContainerdRuntime, DEFAULT_CONTAINER_LOG, type ContainerdRuntime, type ContainerdRuntimeOptions } from "./runtime.ts";
export type { ContainerLogOptions } from "./stdio.ts";
export { createLoggerReports, type LoggerReport, type LoggerReports } from "./logger/reports.ts";
export { createContainerdClient, DEFAULT_ADDRESS, DEFAULT_NAMESPACE, type ContainerdClient, type Services } from "./client.ts";
export { createContentStore, type BlobDescriptor, type BlobSink, type ContentStore } from "./content.ts";
export { LABELS } from "./containers.ts";
