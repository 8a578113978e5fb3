// Test helpers for controllers: transports that fail or hold back chosen calls, a silent logger,
// polling, and a ReplicaSet builder. Used by unit and integration tests only.
import { create } from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import pino, { type Logger } from "pino";
import { ReplicaSetSchema, type ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import { createResourceClient } from "../../client/resource-client.ts";

export const quietLog = (): Logger => pino({ level: process.env.SKIFF_TEST_LOG ?? "silent" });

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await sleep(25);
  }
}

export function replicaSet(name: string, replicas: number, opts: { labels?: Record<string, string>; minReadySeconds?: number; finalizers?: string[] } = {}): ReplicaSet {
  const labels = opts.labels ?? { app: name };
  return create(ReplicaSetSchema, {
    metadata: { name, namespace: "default", finalizers: opts.finalizers ?? [] },
    spec: {
      replicas,
      minReadySeconds: opts.minReadySeconds ?? 0,
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { containers: [{ name: "main", image: "skiff.local/busybox:v1" }] } },
    },
  });
}

/** "skiff.v1alpha1.PodService/Create" */
type MethodName = string;

export interface TestTransport extends Transport {
  /** Calls made so far, per method ("skiff.v1alpha1.PodService/Create"). */
  calls(method: MethodName): number;
  /** Fails calls of `method` when `when(n)` is true for the call's number n (1-based). */
  failWhen(method: MethodName, when: ((n: number) => boolean) | undefined): void;
  /** Holds every message of the streams of `method` until resume(). */
  pause(method: MethodName): void;
  resume(method: MethodName): void;
  /** Holds each message of the streams of `method` for `ms()` ms first (order kept), until undefined. */
  delay(method: MethodName, ms: (() => number) | undefined): void;
}

export function testTransport(inner: Transport): TestTransport {
  const counts = new Map<string, number>();
  const failing = new Map<string, (n: number) => boolean>();
  const paused = new Map<string, { promise: Promise<void>; release: () => void }>();
  const delays = new Map<string, () => number>();
  const nameOf = (m: { parent: { typeName: string }; name: string }) => `${m.parent.typeName}/${m.name}`;
  const count = (name: string) => {
    const n = (counts.get(name) ?? 0) + 1;
    counts.set(name, n);
    if (failing.get(name)?.(n)) throw new Error(`injected failure of ${name} call ${n}`);
  };
  async function* gated<T>(name: string, messages: AsyncIterable<T>, signal: AbortSignal | undefined): AsyncIterable<T> {
    const aborted = new Promise<void>((r) => signal?.addEventListener("abort", () => r(), { once: true }));
    for await (const m of messages) {
      for (let gate = paused.get(name); gate && !signal?.aborted; gate = paused.get(name)) await Promise.race([gate.promise, aborted]);
      const ms = delays.get(name)?.();
      if (ms) await Promise.race([sleep(ms), aborted]);
      if (signal?.aborted) return;
      yield m;
    }
  }
  return {
    async unary(method, ...rest) {
      count(nameOf(method));
      return inner.unary(method, ...rest);
    },
    async stream(method, signal, ...rest) {
      const name = nameOf(method);
      count(name);
      const res = await inner.stream(method, signal, ...rest);
      return { ...res, message: gated(name, res.message, signal) };
    },
    calls: (m) => counts.get(m) ?? 0,
    failWhen(m, when) {
      if (when) failing.set(m, when);
      else failing.delete(m);
    },
    pause(m) {
      if (paused.has(m)) return;
      let release!: () => void;
      const promise = new Promise<void>((r) => (release = r));
      paused.set(m, { promise, release });
    },
    resume(m) {
      const g = paused.get(m);
      paused.delete(m);
      g?.release();
    },
    delay(m, ms) {
      if (ms) delays.set(m, ms);
      else delays.delete(m);
    },
  };
}

// ---- an independent observer of ReplicaSets and their pods ----

interface Observed {
  rv: bigint;
  kind: "ReplicaSet" | "Pod";
  type: string;
  obj: any;
}

export interface ReplicaSetAudit {
  /** A create (or adoption) that took a ReplicaSet's active pods above its replicas at that revision. */
  violations: string[];
  /** Pods created already controlled by the ReplicaSet, by ReplicaSet name. */
  creates: Map<string, number>;
  /** The most active pods a ReplicaSet ever had, by name. */
  maxActive: Map<string, number>;
}

/**
 * Watches ReplicaSets and pods of a namespace from now on, and afterwards replays both streams
 * in revision order (one global order in etcd and the memory store) to check that no pod ever
 * became an active, controlled pod of a ReplicaSet that already had `replicas` of them.
 */
export function auditReplicaSets(transport: Transport, namespace = "default") {
  const events: Observed[] = [];
  const abort = new AbortController();
  const ready: Promise<void>[] = [];
  const loops: Promise<void>[] = [];
  for (const kind of ["ReplicaSet", "Pod"] as const) {
    let synced!: () => void;
    ready.push(new Promise((r) => (synced = r)));
    const client = createResourceClient(transport, kind);
    loops.push(
      (async () => {
        try {
          for await (const ev of client.watch(namespace, { signal: abort.signal })) {
            if (ev.type === "BOOKMARK") {
              synced();
              continue;
            }
            events.push({ rv: BigInt(ev.object.metadata?.resourceVersion || "0"), kind, type: ev.type, obj: ev.object });
          }
        } catch (err) {
          if (!abort.signal.aborted) throw err;
        }
      })(),
    );
  }
  return {
    /** Resolves once both watches delivered the current state. */
    ready: () => Promise.all(ready).then(() => undefined),
    async stop() {
      abort.abort();
      await Promise.allSettled(loops);
    },
    check(): ReplicaSetAudit {
      const sorted = [...events].sort((a, b) => (a.rv < b.rv ? -1 : a.rv > b.rv ? 1 : 0));
      const replicas = new Map<string, { name: string; replicas: number }>();
      const pods = new Map<string, { owner?: string }>();
      const out: ReplicaSetAudit = { violations: [], creates: new Map(), maxActive: new Map() };
      const ownerOf = (p: any): string | undefined => {
        const ref = p.metadata?.ownerReferences?.find((r: any) => r.controller);
        const active = !p.metadata?.deletionTimestamp && p.status?.phase !== "Succeeded" && p.status?.phase !== "Failed";
        return active ? ref?.uid : undefined;
      };
      const countOf = (uid: string) => [...pods.values()].filter((p) => p.owner === uid).length;
      for (const ev of sorted) {
        const m = ev.obj.metadata;
        if (ev.kind === "ReplicaSet") {
          if (ev.type === "DELETED") replicas.delete(m.uid);
          else replicas.set(m.uid, { name: m.name, replicas: ev.obj.spec?.replicas ?? 1 });
          continue;
        }
        const before = pods.get(m.name)?.owner;
        const after = ev.type === "DELETED" ? undefined : ownerOf(ev.obj);
        if (ev.type === "DELETED") pods.delete(m.name);
        else pods.set(m.name, { owner: after });
        if (!after || after === before) continue;
        const rs = replicas.get(after);
        if (!rs) continue;
        if (ev.type === "ADDED") out.creates.set(rs.name, (out.creates.get(rs.name) ?? 0) + 1);
        const n = countOf(after);
        out.maxActive.set(rs.name, Math.max(out.maxActive.get(rs.name) ?? 0, n));
        if (n > rs.replicas) out.violations.push(`rev ${ev.rv}: ${rs.name} has ${n} active pods (${m.name} ${ev.type}), replicas ${rs.replicas}`);
      }
      return out;
    },
  };
}
