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
    cluster = await startTestCluster({ eventTtlMs: 800 });
    const events = cluster.client<Event>("Event");
    const now = Date.now();
    await events.create(event("ancient", now - 3_600_000));
    await events.create(event("fresh", now));
    await events.create(event("repeated", now));
    await cluster.start(createEventTtlController(cluster.ctx));
    await waitFor("ancient deleted", () => gone(events, "default", "ancient"), 2000);
    expect(await gone(events, "default", "fresh")).toBe(false);

    await sleep(500);
    const r = await events.get("default", "repeated");
    r.count += 1;
    r.lastTimestamp = timestampFromMs(Date.now());
    await events.update(r);

    await waitFor("fresh deleted", () => gone(events, "default", "fresh"), 2000);
    const freshGoneAt = Date.now();
    expect(freshGoneAt - now).toBeGreaterThanOrEqual(750);
    expect(await gone(events, "default", "repeated")).toBe(false);
    await waitFor("repeated deleted", () => gone(events, "default", "repeated"), 2000);
  });

  it("lastSeenMs falls back to firstTimestamp, then creation", () => {
    const e = create(EventSchema, { metadata: { creationTimestamp: timestampFromMs(7000) } });
    expect(lastSeenMs(e)).toBe(7000);
    e.firstTimestamp = timestampFromMs(8000);
    expect(lastSeenMs(e)).toBe(8000);
    e.lastTimestamp = timestampFromMs(9000);
    expect(lastSeenMs(e)).toBe(9000);
  });
});
