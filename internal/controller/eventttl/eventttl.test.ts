import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, it } from "vitest";
import { EventSchema, type Event } from "../../../gen/skiff/v1alpha1/coordination_pb.js";
import { gone, sleep, startTestCluster, waitFor, type TestCluster } from "../node/testing.ts";
import { createEventTtlController, lastSeenMs } from "./eventttl.ts";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

const event = (name: string, lastMs: number) =>
  create(EventSchema, { metadata: { name, namespace: "default" }, reason: "Test", message: name, count: 1, firstTimestamp: timestampFromMs(lastMs), lastTimestamp: timestampFromMs(lastMs) });

describe("event TTL controller", () => {
  it("deletes events once lastTimestamp is older than the TTL; a repeat moves the deadline", async () => {
    // Only lower bounds on when each goes: a loaded machine may delete late, never early. Deletions
    // are timed from a watch, so an early one shows as early however slowly this test runs.
    const ttlMs = 3000;
    cluster = await startTestCluster({ eventTtlMs: ttlMs });
    const events = cluster.client<Event>("Event");
    const deletedAt = new Map<string, number>();
    const watching = new AbortController();
    const { resourceVersion } = await events.list("default");
    const watched = (async () => {
      for await (const e of events.watch("default", { resourceVersion, signal: watching.signal })) {
        if (e.type === "DELETED") deletedAt.set(e.object.metadata!.name, Date.now());
      }
    })().catch(() => undefined);
    const deleted = (name: string) => waitFor(`${name} deleted`, () => deletedAt.get(name), 15_000);
    try {
      const now = Date.now();
      await events.create(event("ancient", now - 3_600_000));
      await events.create(event("fresh", now));
      await events.create(event("repeated", now));
      await cluster.start(createEventTtlController(cluster.ctx));
      await deleted("ancient");

      await sleep(500);
      const r = await events.get("default", "repeated");
      r.count += 1;
      const repeatedAt = Date.now();
      r.lastTimestamp = timestampFromMs(repeatedAt);
      await events.update(r);

      expect((await deleted("fresh")) - now).toBeGreaterThanOrEqual(ttlMs - 50);
      // Deleted no earlier than a TTL after the repeat: the deadline moved with it.
      expect((await deleted("repeated")) - repeatedAt).toBeGreaterThanOrEqual(ttlMs - 50);
      expect(await gone(events, "default", "repeated")).toBe(true);
    } finally {
      watching.abort();
      await watched;
    }
  }, 40_000);

  it("lastSeenMs falls back to firstTimestamp, then creation", () => {
    const e = create(EventSchema, { metadata: { creationTimestamp: timestampFromMs(7000) } });
    expect(lastSeenMs(e)).toBe(7000);
    e.firstTimestamp = timestampFromMs(8000);
    expect(lastSeenMs(e)).toBe(8000);
    e.lastTimestamp = timestampFromMs(9000);
    expect(lastSeenMs(e)).toBe(9000);
  });
});
