// Test harness for the node, endpoints, gc, podgc and event TTL controllers: controllers over a
// transport (an in-process apiserver on the memory store, or the etcd control plane of the
// integration tests), object builders and polling. Used by tests only.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Transport } from "@connectrpc/connect";
import pino from "pino";
import { LeaseSchema, type Lease } from "../../../gen/skiff/v1alpha1/coordination_pb.js";
import { NodeSchema, type Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema, type Pod, type Toleration } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { NODE_LEASE_NAMESPACE } from "../../agent/lease.ts";
import type { ApiObject } from "../../api/registry.ts";
import { startApiServer, type ApiServer } from "../../apiserver/server.ts";
import { createEventRecorder } from "../../client/events.ts";
import { createSharedInformerFactory } from "../../client/informer.ts";
import { createResourceClient, type ResourceClient } from "../../client/resource-client.ts";
import { createApiTransport } from "../../client/transport.ts";
import { createMemoryStore } from "../../storage/memory.ts";
import type { Controller, ControllerConfig, ControllerContext } from "../controller.ts";
import { adminCredentials, testPki } from "../../pki/testing.ts";

export interface ControllerHarness {
  ctx: ControllerContext;
  client<T extends ApiObject = any>(kind: string): ResourceClient<T>;
  /** Starts the informers, waits for them to sync, runs the controllers. */
  start(...controllers: Controller[]): Promise<void>;
  close(): Promise<void>;
}

export function controllerHarness(transport: Transport, options: Partial<ControllerConfig> = {}): ControllerHarness {
  const log = pino({ level: process.env.SKIFF_TEST_LOG ?? "silent" });
  const informers = createSharedInformerFactory(transport, { backoff: { initialMs: 20, maxMs: 500 } });
  const recorder = createEventRecorder({ transport, component: "controller-test", log });
  const running: Controller[] = [];
  const abort = new AbortController();
  return {
    ctx: { transport, informers, recorder, log, options },
    client: (kind) => createResourceClient(transport, kind),
    async start(...controllers) {
      informers.start(abort.signal);
      await informers.waitForSync();
      for (const c of controllers) {
        c.run();
        running.push(c);
      }
    },
    async close() {
      for (const c of running.splice(0)) await c.stop();
      abort.abort();
      await informers.stop();
      await recorder.flush();
    },
  };
}

export interface TestCluster extends ControllerHarness {
  server: ApiServer;
  transport: Transport;
}

/** An apiserver on the memory store and a harness over it. */
export async function startTestCluster(options: Partial<ControllerConfig> = {}): Promise<TestCluster> {
  const server = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0, heartbeatMs: 200 });
  const transport = createApiTransport(server.url, adminCredentials());
  const h = controllerHarness(transport, options);
  return {
    ...h,
    server,
    transport,
    async close() {
      await h.close();
      await server.close();
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Falsy = false | 0 | "" | null | undefined;

/** Polls until fn returns something truthy (errors count as not yet); returns it. */
export async function waitFor<T>(what: string, fn: () => T | Falsy | Promise<T | Falsy>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.message : String(last)}`);
    await sleep(20);
  }
}

/** Resolves true once the object is gone (NotFound). */
export async function gone(client: ResourceClient<any>, namespace: string, name: string): Promise<boolean> {
  try {
    await client.get(namespace, name);
    return false;
  } catch (err) {
    if ((err as { code?: number }).code === 5) return true; // Code.NotFound
    throw err;
  }
}

export function testNode(name: string, opts: { ready?: "True" | "False" | "Unknown"; podCidr?: string } = {}): Node {
  const now = timestampFromMs(Date.now());
  return create(NodeSchema, {
    metadata: { name },
    spec: { podCidr: opts.podCidr ?? "", podCidrs: opts.podCidr ? [opts.podCidr] : [] },
    status: {
      capacity: { cpu: "4", memory: "8Gi", pods: "110" },
      conditions: opts.ready ? [{ type: "Ready", status: opts.ready, reason: "KubeletReady", lastHeartbeatTime: now, lastTransitionTime: now }] : [],
    },
  });
}

export function testLease(node: string, renewMs = Date.now()): Lease {
  return create(LeaseSchema, {
    metadata: { name: node, namespace: NODE_LEASE_NAMESPACE },
    spec: { holderIdentity: node, leaseDurationSeconds: 40, renewTime: timestampFromMs(renewMs) },
  });
}

export function testPod(
  name: string,
  opts: { nodeName?: string; labels?: Record<string, string>; tolerations?: Partial<Toleration>[]; graceSeconds?: number; namespace?: string } = {},
): Pod {
  return create(PodSchema, {
    metadata: { name, namespace: opts.namespace ?? "default", labels: opts.labels ?? {} },
    spec: {
      nodeName: opts.nodeName ?? "",
      containers: [{ name: "main", image: "skiff.local/busybox:v1" }],
      tolerations: (opts.tolerations ?? []) as Toleration[],
      terminationGracePeriodSeconds: opts.graceSeconds === undefined ? undefined : BigInt(opts.graceSeconds),
    },
  });
}
