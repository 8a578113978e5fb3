// Python's grpcio as a client of the apiserver over TLS: with a client certificate, with a bearer
// token, without credentials, and with an 8,000-character name (grpcio refuses response metadata
// over its limit, so an error that echoed the whole name failed there).
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConfigMapServiceCreateRequestSchema,
  ConfigMapServiceCreateResponseSchema,
  ConfigMapServiceGetRequestSchema,
  ConfigMapServiceListRequestSchema,
  ConfigMapServiceListResponseSchema,
} from "../../gen/skiff/v1alpha1/config_map_service_pb.js";
import { createStaticTokenAuthenticator } from "../../internal/auth/authn/token-file.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

const PYTHON = "/usr/bin/python3"; // Debian's, where python3-grpcio is installed
const SCRIPT = fileURLToPath(new URL("./grpcio-call.py", import.meta.url));
const SERVICE = "/skiff.v1alpha1.ConfigMapService";

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane({
    tokenAuthenticators: [createStaticTokenAuthenticator(new Map([["grpcio-token", { name: "grpcio-user", groups: ["system:masters"] }]]))],
  });
});
afterAll(async () => {
  await cp?.stop();
});

interface Answer {
  code: string;
  details?: string;
  response?: string;
}

function call(path: string, request: Uint8Array, auth: { cert?: string; key?: string; token?: string }): Promise<Answer> {
  const job = JSON.stringify({ target: new URL(cp.server.url).host, ca: cp.pki.ca.cert, path, request: Buffer.from(request).toString("hex"), ...auth });
  return new Promise((resolve, reject) => {
    const child = execFile(PYTHON, [SCRIPT], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`grpcio client failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as Answer);
    });
    child.stdin!.end(job);
  });
}

const admin = () => ({ cert: cp.pki.admin.cert, key: cp.pki.admin.key });

describe("Python grpcio over TLS", () => {
  it("creates with the admin's client certificate and reads the object back whole", async () => {
    const req = create(ConfigMapServiceCreateRequestSchema, { configMap: { metadata: { name: "from-grpcio", namespace: "default" }, data: { lang: "python" } } });
    const a = await call(`${SERVICE}/Create`, toBinary(ConfigMapServiceCreateRequestSchema, req), admin());
    expect(a.code).toBe("OK");
    const created = fromBinary(ConfigMapServiceCreateResponseSchema, Buffer.from(a.response!, "hex")).configMap!;
    expect(created.metadata?.name).toBe("from-grpcio");
    expect(created.metadata?.uid).not.toBe("");
    expect(created.data).toEqual({ lang: "python" });
  });

  it("lists with a bearer token and no client certificate", async () => {
    const req = toBinary(ConfigMapServiceListRequestSchema, create(ConfigMapServiceListRequestSchema, { namespace: "default" }));
    const a = await call(`${SERVICE}/List`, req, { token: "grpcio-token" });
    expect(a.code).toBe("OK");
    const names = fromBinary(ConfigMapServiceListResponseSchema, Buffer.from(a.response!, "hex")).items.map((c) => c.metadata?.name);
    expect(names).toContain("from-grpcio");
  });

  it("is UNAUTHENTICATED without credentials and with an unknown token", async () => {
    const req = toBinary(ConfigMapServiceListRequestSchema, create(ConfigMapServiceListRequestSchema, { namespace: "default" }));
    expect((await call(`${SERVICE}/List`, req, {})).code).toBe("UNAUTHENTICATED");
    expect((await call(`${SERVICE}/List`, req, { token: "not-a-token" })).code).toBe("UNAUTHENTICATED");
  });

  it("gets NOT_FOUND with a short message for an 8,000-character name", async () => {
    const req = toBinary(ConfigMapServiceGetRequestSchema, create(ConfigMapServiceGetRequestSchema, { namespace: "default", name: "n".repeat(8000) }));
    const a = await call(`${SERVICE}/Get`, req, admin());
    expect(a.code).toBe("NOT_FOUND");
    expect(a.details!.length).toBeLessThan(300);
  });
});
