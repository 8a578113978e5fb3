// Skiff's resource client over its gRPC transport: a caller that stops reading a watch early (a
// `break` or `return` out of the loop, no abort) must end the call on the server. connect's
// createClient hides the stream's return(), so without its own cancel the server's watch stayed
// open, its events piling up in the watch cache's buffer for a client that had gone.
import { afterAll, beforeAll, expect, it } from "vitest";
import { configMap } from "../fixtures/objects.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane();
});
afterAll(async () => {
  await cp?.stop();
});

it("breaking out of a watch loop ends the server's watch", async () => {
  const client = cp.client("ConfigMap");
  await client.create(configMap("watched-once"));
  const watchers = () => cp.server.caches.get("ConfigMap")!.watcherCount();
  const before = watchers();
  const seen: string[] = [];
  for await (const ev of client.watch("default", { fieldSelector: "metadata.name=watched-once" })) {
    seen.push(ev.type);
    if (ev.type === "BOOKMARK") break;
  }
  expect(seen).toEqual(["ADDED", "BOOKMARK"]);
  await expect.poll(watchers).toBe(before);
});

it("a caller's own abort still ends the watch with that abort", async () => {
  const client = cp.client("ConfigMap");
  const ac = new AbortController();
  const watchers = () => cp.server.caches.get("ConfigMap")!.watcherCount();
  const before = watchers();
  const ended = (async () => {
    for await (const ev of client.watch("default", { signal: ac.signal })) if (ev.type === "BOOKMARK") ac.abort();
  })().catch((e: unknown) => e);
  expect(String(await ended)).toMatch(/cancel/i);
  await expect.poll(watchers).toBe(before);
});
