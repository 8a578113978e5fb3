import { create } from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import type { Event } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { PodSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { ReplicaSetSchema } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import { startApiServer } from "../apiserver/server.ts";
import { adminCredentials, testPki } from "../pki/testing.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { COMBINED_PREFIX, createEventRecorder, eventName } from "./events.ts";
import { createResourceClient } from "./resource-client.ts";
import { createApiTransport } from "./transport.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function apiserver(): Promise<Transport> {
  const server = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0, heartbeatMs: 200 });
  cleanups.push(() => server.close());
  return createApiTransport(server.url, adminCredentials());
}

const listEvents = async (transport: Transport) => (await createResourceClient<Event>(transport, "Event").list("default")).items;
const rs = create(ReplicaSetSchema, { metadata: { name: "web", namespace: "default", uid: "u-1" } });
const pod = (i: number) => create(PodSchema, { metadata: { name: `web-${i}`, namespace: "default", uid: `p-${i}` } });

/** A clock the test moves by hand. */
function manualClock(startMs = 1_765_000_000_000) {
  const c = { ms: startMs, now: () => c.ms };
  return c;
}

describe("event names", () => {
  it("differ for events of one object made in the same millisecond", () => {
    const names = new Set(Array.from({ length: 20_000 }, () => eventName("web-5d8f", 1_765_000_000_000)));
    expect(names.size).toBe(20_000);
  });
});

describe("createEventRecorder", () => {
  it("combines a burst of similar events about one object and stops at 25 writes (a ReplicaSet creating 300 pods)", async () => {
    const transport = await apiserver();
    const clock = manualClock();
    const recorder = createEventRecorder({ transport, component: "test", now: clock.now });
    for (let i = 0; i < 300; i++) recorder.event(rs, "Normal", "SuccessfulCreate", `Created pod: web-${i}`);
    await recorder.flush();
    const events = (await listEvents(transport)).filter((e) => e.reason === "SuccessfulCreate");
    // The first 9 each stand alone; from the 10th on, they count up one combined event.
    const single = events.filter((e) => !e.message.startsWith(COMBINED_PREFIX));
    const combined = events.filter((e) => e.message.startsWith(COMBINED_PREFIX));
    expect(single.map((e) => e.message).sort()).toEqual(Array.from({ length: 9 }, (_, i) => `Created pod: web-${i}`).sort());
    expect(single.every((e) => e.count === 1)).toBe(true);
    expect(combined).toHaveLength(1);
    // 25 events let through (9 alone + 16 combined), the other 275 refused by the per-object limit.
    expect(combined[0].count).toBe(16);
    expect(combined[0].message).toBe(`${COMBINED_PREFIX}Created pod: web-24`);
    expect(recorder.stats()).toMatchObject({ throttled: 275, dropped: 0, failed: 0 });

    // The bucket refills one event per 5 minutes: the next one bumps the combined event again.
    clock.ms += 300_000;
    recorder.event(rs, "Normal", "SuccessfulCreate", "Created pod: web-300");
    recorder.event(rs, "Normal", "SuccessfulCreate", "Created pod: web-301");
    await recorder.flush();
    const after = (await listEvents(transport)).filter((e) => e.message.startsWith(COMBINED_PREFIX));
    expect(after).toHaveLength(1);
    expect(after[0].count).toBe(17);
    expect(after[0].message).toBe(`${COMBINED_PREFIX}Created pod: web-300`);
    expect(recorder.stats().throttled).toBe(276);
  });

  it("counts a repeated event on the one already written, and writes one event for each of many objects", async () => {
    const transport = await apiserver();
    const recorder = createEventRecorder({ transport, component: "test" });
    for (let i = 0; i < 3; i++) recorder.event(pod(0), "Warning", "BackOff", "Back-off restarting failed container");
    await recorder.flush();
    recorder.event(pod(0), "Warning", "BackOff", "Back-off restarting failed container");
    for (let i = 1; i <= 50; i++) recorder.event(pod(i), "Normal", "Scheduled", `Successfully assigned default/web-${i} to n1`);
    await recorder.flush();
    const events = await listEvents(transport);
    const backoff = events.filter((e) => e.reason === "BackOff");
    expect(backoff).toHaveLength(1);
    expect(backoff[0].count).toBe(4);
    expect(backoff[0].involvedObject?.name).toBe("web-0");
    const scheduled = events.filter((e) => e.reason === "Scheduled");
    expect(new Set(scheduled.map((e) => e.involvedObject?.name)).size).toBe(50);
  });

  it("never waits on a hung apiserver: the queue is bounded and what does not fit is dropped and counted", async () => {
    let calls = 0;
    const hung = {
      unary: () => {
        calls++;
        return new Promise(() => {});
      },
      stream: () => new Promise(() => {}),
    } as unknown as Transport;
    const recorder = createEventRecorder({ transport: hung, component: "test", concurrency: 2, maxQueued: 10 });
    for (let i = 0; i < 100; i++) recorder.event(pod(i), "Normal", "Scheduled", `Successfully assigned default/web-${i} to n1`);
    // 2 writes started, 10 waiting, 88 dropped — all without waiting for anything.
    expect(calls).toBe(2);
    expect(recorder.stats()).toMatchObject({ dropped: 88, written: 0 });
    expect(recorder.discard()).toBe(10);
    expect(recorder.stats().dropped).toBe(98);
  });

  it("drops the oldest waiting events instead when the caller asks, so the latest are the ones written", async () => {
    const transport = await apiserver();
    // Writes start only when the test lets them: the first two are in flight, the rest queue.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const gated = {
      unary: async (...args: unknown[]) => {
        await gate;
        return (transport.unary as (...a: unknown[]) => unknown)(...args);
      },
      stream: transport.stream,
    } as unknown as Transport;
    const recorder = createEventRecorder({ transport: gated, component: "test", concurrency: 2, maxQueued: 3, dropWhenFull: "oldest" });
    for (let i = 0; i < 10; i++) recorder.event(pod(i), "Normal", "Scheduled", `Successfully assigned default/web-${i} to n1`);
    expect(recorder.stats().dropped).toBe(5);
    open();
    await recorder.flush();
    const written = (await listEvents(transport)).map((e) => e.involvedObject?.name).sort();
    // web-0 and web-1 were in flight; of the eight that queued, the last three were kept.
    expect(written).toEqual(["web-0", "web-1", "web-7", "web-8", "web-9"]);
    expect(recorder.stats()).toMatchObject({ written: 5, dropped: 5, failed: 0 });
  });
});
