import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Event } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { ReplicaSetSchema } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import { startApiServer } from "../apiserver/server.ts";
import { adminCredentials, testPki } from "../pki/testing.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { createEventRecorder, eventName } from "./events.ts";
import { createResourceClient } from "./resource-client.ts";
import { createApiTransport } from "./transport.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe("event names", () => {
  it("differ for events of one object made in the same millisecond", () => {
    const names = new Set(Array.from({ length: 20_000 }, () => eventName("web-5d8f", 1_765_000_000_000)));
    expect(names.size).toBe(20_000);
  });
});

describe("createEventRecorder", () => {
  it("writes every event of a burst about one object (a ReplicaSet creating many pods at once)", async () => {
    const server = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0, heartbeatMs: 200 });
    cleanups.push(() => server.close());
    const transport = createApiTransport(server.url, adminCredentials());
    const recorder = createEventRecorder({ transport, component: "test" });
    const rs = create(ReplicaSetSchema, { metadata: { name: "web", namespace: "default", uid: "u-1" } });
    // The clock stands still: every event of the burst is made in the same millisecond.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    try {
      for (let i = 0; i < 300; i++) recorder.event(rs, "Normal", "SuccessfulCreate", `Created pod: web-${i}`);
      await recorder.flush();
    } finally {
      vi.useRealTimers();
    }
    const events = await createResourceClient<Event>(transport, "Event").list("default");
    expect(events.items.filter((e) => e.reason === "SuccessfulCreate")).toHaveLength(300);
  });
});
