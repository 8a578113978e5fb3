// The HTTP side of the apiserver port (HTTPS/1.1): health and readiness (open to anyone), readiness
// that follows etcd, Prometheus metrics (authenticated), and the Connect protocol as JSON (what
// curl and browsers speak) on the same port.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configMap } from "../fixtures/objects.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { getTls, requestTls } from "../harness/pki.ts";

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane();
});
afterAll(async () => {
  await cp?.stop();
});

const admin = () => cp.pki.adminCredentials as { ca: string; cert: string; key: string };
const anonymous = () => ({ ca: cp.pki.ca.cert });

describe("http endpoints", () => {
  it("/healthz, /livez and /readyz answer over HTTPS/1.1 without credentials", async () => {
    expect((await getTls(`${cp.server.url}/healthz`, anonymous())).status).toBe(200);
    expect((await getTls(`${cp.server.url}/livez`, anonymous())).status).toBe(200);
    expect((await getTls(`${cp.server.url}/readyz`, anonymous())).status).toBe(200);
  });

  it("/metrics needs credentials: 401 without, 200 with a client certificate", async () => {
    const res = await getTls(`${cp.server.url}/metrics`, anonymous());
    expect(res.status).toBe(401);
    expect(res.body).toMatch(/^no credentials: /);
    expect((await getTls(`${cp.server.url}/metrics`, admin())).status).toBe(200);
  });

  it("/metrics reports requests by method and code, and storage latency", async () => {
    await cp.client("ConfigMap").create(configMap("m1"));
    await cp.client("ConfigMap").get("default", "missing").catch(() => undefined);
    const text = (await getTls(`${cp.server.url}/metrics`, admin())).body;
    expect(text).toMatch(/skiff_apiserver_requests_total\{service="skiff.v1alpha1.ConfigMapService",method="Create",code="ok"\} [1-9]/);
    expect(text).toMatch(/skiff_apiserver_requests_total\{service="skiff.v1alpha1.ConfigMapService",method="Get",code="not_found"\} [1-9]/);
    expect(text).toMatch(/skiff_apiserver_request_duration_seconds_bucket\{le="0.005",service="skiff.v1alpha1.ConfigMapService",method="Create"\}/);
    expect(text).toMatch(/skiff_storage_request_duration_seconds_count\{operation="create"\} [1-9]/);
  });

  it("serves the Connect protocol as JSON over HTTP/1.1", async () => {
    const res = await requestTls(`${cp.server.url}/skiff.v1alpha1.ConfigMapService/Create`, {
      ...admin(),
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ configMap: { metadata: { name: "via-http1" }, data: { k: "v" } } }),
    });
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body);
    expect(body.configMap.metadata.namespace).toBe("default");
    expect(body.configMap.data).toEqual({ k: "v" });
    const bad = await requestTls(`${cp.server.url}/skiff.v1alpha1.ConfigMapService/Get`, {
      ...admin(),
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ namespace: "default", name: "nope" }),
    });
    expect(bad.status).toBe(404);
    expect(JSON.parse(bad.body).code).toBe("not_found");
  });

  it("/readyz fails while etcd is down", async () => {
    await cp.etcd.stop();
    await expect.poll(async () => (await getTls(`${cp.server.url}/readyz`, anonymous())).status, { timeout: 15_000 }).toBe(503);
    expect((await getTls(`${cp.server.url}/healthz`, anonymous())).status).toBe(200);
  }, 30_000);
});
