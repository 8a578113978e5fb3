import { create } from "@bufbuild/protobuf";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ContainerSchema, LifecycleHandlerSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createFakeRuntime } from "../runtime/fake/fake.ts";
import { runHook } from "./hooks.ts";

const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

const container = create(ContainerSchema, { name: "app", image: "busybox", ports: [{ name: "http", containerPort: 1 }] });

async function loopbackServer(status: number): Promise<{ port: number; seen: { url: string; header: string | undefined }[] }> {
  const seen: { url: string; header: string | undefined }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? "", header: req.headers["x-hook"] as string | undefined });
    res.statusCode = status;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(() => server.close());
  return { port: (server.address() as AddressInfo).port, seen };
}

describe("lifecycle hook actions", () => {
  it("httpGet requests the path with the headers at the pod's IP; a 5xx fails with the status", async () => {
    const ok = await loopbackServer(200);
    const target = { runtime: createFakeRuntime(), containerId: "c1", container, podIP: "127.0.0.1" };
    const handler = create(LifecycleHandlerSchema, { httpGet: { path: "drain", port: String(ok.port), httpHeaders: [{ name: "X-Hook", value: "preStop" }] } });
    expect(await runHook(handler, target, 5000)).toEqual({ success: true, message: "" });
    expect(ok.seen).toEqual([{ url: "/drain", header: "preStop" }]);

    const bad = await loopbackServer(503);
    const failing = create(LifecycleHandlerSchema, { httpGet: { path: "/", port: String(bad.port) } });
    expect(await runHook(failing, target, 5000)).toEqual({ success: false, message: "HTTP probe failed with statuscode: 503" });
  });

  it("sleep waits in the agent and is cut short by the time left", async () => {
    const target = { runtime: createFakeRuntime(), containerId: "c1", container, podIP: "127.0.0.1" };
    const handler = create(LifecycleHandlerSchema, { sleep: { seconds: 3600n } });
    // Bounded by the timeout: resolves (successfully) instead of sleeping an hour.
    expect(await runHook(handler, target, 20)).toEqual({ success: true, message: "" });
  });

  it("a hook without an action fails saying so", async () => {
    const target = { runtime: createFakeRuntime(), containerId: "c1", container, podIP: "127.0.0.1" };
    expect(await runHook(create(LifecycleHandlerSchema, {}), target, 20)).toEqual({ success: false, message: "hook has no exec, httpGet or sleep action" });
  });
});
