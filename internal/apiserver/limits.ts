// Sizes the apiserver refuses before anything reaches storage, as Kubernetes sets them: a request
// body of at most 3 MiB on every protocol, a stored object of at most 1.5 MiB (etcd's default
// --max-request-bytes), and at most 1 MiB of ConfigMap or Secret data.

/** Largest request message, on every protocol (larger: RESOURCE_EXHAUSTED before decoding). */
export const MAX_REQUEST_BYTES = 3 * 1024 * 1024;
/** Largest object as stored (protobuf bytes): larger is RESOURCE_EXHAUSTED. */
export const MAX_OBJECT_BYTES = 1.5 * 1024 * 1024;
