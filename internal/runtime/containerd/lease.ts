// Leases: what a multi-step operation (import, pull, unpack, container create) writes is not
// yet reachable from an image or a container, so containerd's garbage collector would delete
// it. Every such operation runs inside a lease: its calls carry `containerd-lease`, and the
// lease is deleted at the end, when the image record, GC labels or container hold everything.
// A `containerd.io/gc.expire` label is the safety net when we die before deleting it.

import { randomBytes } from "node:crypto";
import type { ContainerdClient, Services } from "./client.ts";

const EXPIRE_AFTER_MS = 24 * 60 * 60 * 1000;

export async function withLease<T>(client: ContainerdClient, purpose: string, fn: (svc: Services) => Promise<T>): Promise<T> {
  const id = `skiff-${purpose}-${Date.now()}-${randomBytes(4).toString("hex")}`;
  await client.leases.create({
    id,
    labels: { "containerd.io/gc.expire": new Date(Date.now() + EXPIRE_AFTER_MS).toISOString() },
  });
  try {
    return await fn(client.withLease(id));
  } finally {
    await client.leases.delete({ id, sync: false }).catch(() => {});
  }
}
