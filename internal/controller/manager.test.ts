// A controller that cannot be built fails its term: the manager stops leading, gives the lease up
// (a standby takes over at once) and wait() rejects with the reason, instead of leading on
// without that controller.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { startApiServer, type ApiServer } from "../apiserver/server.ts";
import { createResourceClient } from "../client/resource-client.ts";
import { createApiTransport } from "../client/transport.ts";
import { adminCredentials, testPki } from "../pki/testing.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { createController, type ControllerFactory } from "./controller.ts";
import { ControllerStartError, createControllerManager } from "./manager.ts";
import { quietLog, waitFor } from "./replicaset/testing.ts";

const TIMING = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 200 };

let server: ApiServer;

beforeAll(async () => {
  server = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0 });
});

afterAll(async () => {
  await server?.close();
});

/** A controller that only counts its runs, and one whose construction throws. */
function factories(runs: string[]): Record<string, ControllerFactory> {
  return {
    healthy: (ctx) => {
      ctx.informers.informerFor("Namespace");
      const c = createController({ name: "healthy", reconcile: async () => undefined });
      return { ...c, run: (workers) => (runs.push("healthy"), c.run(workers)) };
    },
    broken: () => {
      throw new Error("--cluster-cidr 10.0.0.0/33 is not a CIDR");
    },
  };
}

describe("controller-manager: a controller that fails to start", () => {
  it("fails the term: the lease is released, a standby takes over, wait() rejects with the reason", async () => {
    const transport = createApiTransport(server.url, adminCredentials());
    const leases = createResourceClient<Lease>(transport, "Lease");
    const runs: string[] = [];
    const failing = createControllerManager({
      transport,
      log: quietLog(),
      options: { identity: "failing", leaseName: "cm-fail", controllers: ["*"], factories: factories(runs), ...TIMING },
    });
    await failing.start();
    const err = await failing.wait().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ControllerStartError);
    expect((err as Error).message).toBe('controller "broken" could not be created: --cluster-cidr 10.0.0.0/33 is not a CIDR');
    // Nothing ran, nothing leads, and the lease is free for the next candidate.
    expect([failing.isLeading(), failing.isRunning(), runs]).toEqual([false, false, []]);
    expect((await leases.get("skiff-system", "cm-fail")).spec?.holderIdentity).toBe("");

    // A standby whose controllers build takes the free lease and runs them.
    const standby = createControllerManager({
      transport,
      log: quietLog(),
      options: { identity: "standby", leaseName: "cm-fail", controllers: ["healthy"], factories: factories(runs), ...TIMING },
    });
    try {
      await standby.start();
      await waitFor(() => standby.isRunning(), "the standby runs its controllers");
      expect((await leases.get("skiff-system", "cm-fail")).spec?.holderIdentity).toBe("standby");
      expect(runs).toEqual(["healthy"]);
    } finally {
      await standby.stop();
    }
    await expect(standby.wait()).resolves.toBeUndefined();
  });

  it("without leader election: stops and rejects wait() too", async () => {
    const runs: string[] = [];
    const m = createControllerManager({
      transport: createApiTransport(server.url, adminCredentials()),
      log: quietLog(),
      options: { leaderElect: false, controllers: ["healthy", "broken"], factories: factories(runs) },
    });
    await m.start();
    await expect(m.wait()).rejects.toThrow('controller "broken" could not be created');
    expect([m.isLeading(), m.isRunning(), runs]).toEqual([false, false, []]);
  });
});
