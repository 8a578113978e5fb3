// The client library in one import: transport, typed clients, informers, work queues.
export { createApiTransport, type ApiCredentials } from "./transport.ts";
export { createResourceClient } from "./resource-client.ts";
export type { ListOptions, ListPage, PageOptions, ResourceClient, WatchEvent, WatchOptions, WatchType } from "./resource-client.ts";
export { DEFAULT_PAGE_SIZE, listAllPages } from "./pager.ts";
export type { PagedListOptions } from "./pager.ts";
export {
  compareResourceVersions,
  createInformer,
  createSharedInformerFactory,
  keyOf,
  NAMESPACE_INDEX,
  namespaceIndexFunc,
  splitKey,
} from "./informer.ts";
export type {
  AddHandler,
  DeleteHandler,
  IndexFunc,
  Informer,
  InformerLogger,
  InformerOptions,
  SharedInformerFactory,
  SharedInformerFactoryOptions,
  UpdateHandler,
} from "./informer.ts";
export { createWorkQueue } from "./workqueue.ts";
export type { Handler, Result, WorkQueue, WorkQueueMetrics, WorkQueueOptions } from "./workqueue.ts";
export {
  createDefaultControllerRateLimiter,
  createExponentialBackoffLimiter,
  createMaxOfLimiter,
  createTokenBucketLimiter,
} from "./ratelimit.ts";
export type { ExponentialBackoffOptions, RateLimiter, TokenBucketOptions } from "./ratelimit.ts";
