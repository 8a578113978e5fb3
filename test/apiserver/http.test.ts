// The HTTP side of the apiserver port: health, readiness that follows etcd, Prometheus metrics,
// and the Connect protocol over plain HTTP/1.1 JSON (what curl and browsers speak) on the same port.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configMap } from "../fixtures/objects.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane();
});
afterAll(async () => {
  await cp?.stop();
});

describe("http endpoints", () => {
  it("/healthz and /readyz answer over HTTP/1.1", async () => {
    const h = await fetch(`${cp.server.url}/healthz`);
    expect(h.status).toBe(200);
    expect((await fetch(`${cp.server.url}/readyz`)).status).toBe(200);
  });

  it("/metrics reports requests by method and code, and storage latency", async () => {
    await cp.client("ConfigMap").create(configMap("m1"));
    await cp.client("ConfigMap").get("default", "missing").catch(() => undefined);
    const text = await (await fetch(`${cp.server.url}/metrics`)).text();
    expect(text).toMatch(/skiff_apiserver_requests_total\{service="skiff.v1alpha1.ConfigMapService",method="Create",code="ok"\} [1-9]/);
    expect(text).toMatch(/skiff_apiserver_requests_total\{service="skiff.v1alpha1.ConfigMapService",method="Get",code="not_found"\} [1-9]/);
    expect(text).toMatch(/skiff_apiserver_request_duration_seconds_bucket\{le="0.005",service="skiff.v1alpha1.ConfigMapService",method="Create"\}/);
    expect(text).toMatch(/skiff_storage_request_duration_seconds_count\{operation="create"\} [1-9]/);
  });

  it("serves the Connect protocol as JSON over HTTP/1.1", async () => {
    const res = await fetch(`${cp.server.url}/skiff.v1alpha1.ConfigMapService/Create`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ configMap: { metadata: { name: "via-http1" }, data: { k: "v" } } }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.configMap.metadata.namespace).toBe("default");
    expect(body.configMap.data).toEqual({ k: "v" });
    const bad = await fetch(`${cp.server.url}/skiff.v1alpha1.ConfigMapService/Get`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ namespace: "default", name: "nope" }),
    });
    expect(bad.status).toBe(404);
    expect(((await bad.json()) as any).code).toBe("not_found");
  });

  it("/readyz fails while etcd is down", async () => {
    await cp.etcd.stop();
    await expect.poll(async () => (await fetch(`${cp.server.url}/readyz`)).status, { timeout: 15_000 }).toBe(503);
    expect((await fetch(`${cp.server.url}/healthz`)).status).toBe(200);
  }, 30_000);
});
