// The default policy is enough for every component, and no more than enough is needed: the real
// scheduler, controller-manager (with leader election) and node agent (fake runtime) run a
// Deployment from creation to deletion, each through a TLS transport: every call it
// makes authorized by the apiserver as that component's certificate identity, with node
// restriction applied to the agent's writes. Not one call is refused, and the work gets done.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigMapSchema, SecretSchema } from "../../gen/skiff/v1alpha1/config_pb.js";
import { DeploymentSchema } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createAgent, type Agent } from "../agent/agent.ts";
import { createHostNetwork } from "../agent/network.ts";
import type { ApiObject } from "../api/registry.ts";
import { createResourceClient } from "../client/resource-client.ts";
import { createApiTransport } from "../client/transport.ts";
import { createControllerManager, type ControllerManager } from "../controller/manager.ts";
import { createFakeRuntime } from "../runtime/fake/fake.ts";
import { createScheduler, type Scheduler } from "../scheduler/scheduler.ts";
import type { ApiCredentials } from "../client/credentials.ts";
import { testPki } from "../pki/testing.ts";
import { startAuthTestApi, type AuthTestApi } from "./testing.ts";

interface Refusal {
  user: string;
  message: string;
}

const deniedCodes = new Set([Code.PermissionDenied, Code.Unauthenticated]);

/** Passes calls through to the apiserver (which authorizes and admits them as `who`); records its refusals. */
function recording(inner: Transport, who: string, refused: Refusal[]): Transport {
  const note = (method: DescMethod, e: unknown) => {
    const err = ConnectError.from(e);
    if (deniedCodes.has(err.code)) refused.push({ user: who, message: `${method.parent.typeName}/${method.name}: ${err.rawMessage}` });
    return err;
  };
  return {
    unary: (method, ...rest) => inner.unary(method, ...rest).catch((e) => Promise.reject(note(method, e))),
    async stream(method, ...rest) {
      const res = await inner.stream(method, ...rest).catch((e) => Promise.reject(note(method, e)));
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* messages;
          } catch (e) {
            throw note(method, e);
          }
        })(),
      };
    },
  };
}

let api: AuthTestApi;
let dir: string;
const refused: Refusal[] = [];
let scheduler: Scheduler;
let manager: ControllerManager;
let agent: Agent;
const stop = new AbortController();

beforeAll(async () => {
  api = await startAuthTestApi();
  dir = mkdtempSync(join(tmpdir(), "skiff-components-"));
  writeFileSync(join(dir, "resolv.conf"), "nameserver 192.0.2.53\n");
  const pki = await testPki();
  // Each component under its own certificate: the apiserver authorizes every call as that identity.
  const as = (who: string, credentials: ApiCredentials) => recording(createApiTransport(api.server.url, credentials), who, refused);
  const log = pino({ level: process.env.SKIFF_TEST_LOG ?? "silent" });
  agent = createAgent({
    transport: as("system:node:n1", await pki.nodeCredentials("n1")),
    nodeName: "n1",
    runtime: createFakeRuntime(),
    network: createHostNetwork({ podCidr: "10.88.0.0/24", stateDir: join(dir, "network") }),
    rootDir: join(dir, "agent"),
    log,
    listen: { host: "127.0.0.1", port: 0 },
    tls: await pki.agentServing("n1"),
    heartbeatMs: 200,
    resyncMs: 300,
    podCidr: "10.88.0.0/24",
    resolvConfPath: join(dir, "resolv.conf"),
  });
  await agent.start();
  scheduler = createScheduler({ transport: as("system:kube-scheduler", pki.credentials(pki.scheduler)), log });
  await scheduler.start(stop.signal);
  manager = createControllerManager({
    transport: as("system:kube-controller-manager", pki.credentials(pki.controllerManager)),
    log,
    options: { leaderElect: true, leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 200, identity: "cm-1" },
  });
  await manager.start(stop.signal);
});

afterAll(async () => {
  stop.abort();
  await scheduler?.stop();
  await manager?.stop();
  await agent?.stop();
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, f: () => Promise<T | undefined | false>): Promise<T> {
  for (let i = 0; ; i++) {
    const v = await f();
    if (v) return v;
    if (i > 300) throw new Error(`gave up waiting for ${what}; refused calls: ${JSON.stringify(refused)}`);
    await sleep(50);
  }
}

describe("the default policy and the node authorizer", () => {
  it("let the scheduler, controller-manager and agent run a deployment from start to end, refusing none of their calls", async () => {
    const admin = createApiTransport(api.server.url, (await testPki()).adminCredentials);
    const client = <T extends ApiObject>(k: string) => createResourceClient<T>(admin, k);
    await client("ConfigMap").create(create(ConfigMapSchema, { metadata: { name: "web-config", namespace: "default" }, data: { greeting: "hi" } }));
    await client("Secret").create(create(SecretSchema, { metadata: { name: "web-tls", namespace: "default" }, data: { key: new TextEncoder().encode("k") } }));
    await client("Deployment").create(
      create(DeploymentSchema, {
        metadata: { name: "web", namespace: "default" },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: "web" } },
          template: {
            metadata: { labels: { app: "web" } },
            spec: {
              containers: [
                {
                  name: "c",
                  image: "skiff.local/busybox:v1",
                  env: [
                    { name: "GREETING", valueFrom: { configMapKeyRef: { name: "web-config", key: "greeting" } } },
                    { name: "KEY", valueFrom: { secretKeyRef: { name: "web-tls", key: "key" } } },
                  ],
                },
              ],
            },
          },
        },
      }),
    );
    const pods = client<Pod>("Pod");
    await until("2 pods running on n1", async () => {
      const { items } = await pods.list("default", { labelSelector: "app=web" });
      return items.length === 2 && items.every((p) => p.spec?.nodeName === "n1" && p.status?.phase === "Running");
    });
    await client("Deployment").delete("default", "web");
    await until("the garbage collector and the agent removed every pod", async () => (await pods.list("default", { labelSelector: "app=web" })).items.length === 0);
    expect(refused).toEqual([]);
    expect(manager.isLeading()).toBe(true);
  }, 60_000);

  it("and the transports really enforce it: a component asking for more is refused", async () => {
    const before = refused.length;
    const pki = await testPki();
    const sched = recording(createApiTransport(api.server.url, pki.credentials(pki.scheduler)), "system:kube-scheduler", refused);
    await expect(createResourceClient(sched, "Secret").get("default", "web-tls")).rejects.toThrow(/cannot get resource "secrets"/);
    const node = recording(createApiTransport(api.server.url, await pki.nodeCredentials("n1")), "system:node:n1", refused);
    await expect(createResourceClient(node, "Secret").get("default", "web-tls")).rejects.toThrow(/no pod bound to node "n1" uses secrets default\/web-tls/);
    expect(refused.length).toBe(before + 2);
  });
});
