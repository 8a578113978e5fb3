// A gRPC client Skiff did not write and that shares none of its code: @grpc/grpc-js, with the
// service loaded at run time from the .proto files (as any language's gRPC stack would), over TLS
// with a client certificate and with a bearer token. (Python's grpcio is not installed here.)
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStaticTokenAuthenticator } from "../../internal/auth/authn/token-file.ts";
import { create } from "@bufbuild/protobuf";
import { RoleBindingSchema } from "../../gen/skiff/v1alpha1/rbac_pb.js";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

let cp: ControlPlane;
let ConfigMapService: grpc.ServiceClientConstructor;
beforeAll(async () => {
  cp = await startControlPlane({
    tokenAuthenticators: [createStaticTokenAuthenticator(new Map([["grpc-js-token", { name: "grpc-js-user", groups: [] }]]))],
  });
  // The token's user may read the default namespace.
  await cp.client("RoleBinding").create(
    create(RoleBindingSchema, {
      metadata: { name: "grpc-js-view", namespace: "default" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "view" },
      subjects: [{ kind: "User", apiGroup: "rbac.authorization.k8s.io", name: "grpc-js-user" }],
    }),
  );
  const def = await protoLoader.load("skiff/v1alpha1/config_map_service.proto", { includeDirs: ["proto", "vendor/proto"], keepCase: false, defaults: true, enums: String });
  const pkg = grpc.loadPackageDefinition(def) as any;
  ConfigMapService = pkg.skiff.v1alpha1.ConfigMapService;
});
afterAll(async () => {
  await cp?.stop();
});

const target = () => new URL(cp.server.url).host;

function unary<T>(client: grpc.Client, method: string, req: object, metadata = new grpc.Metadata()): Promise<T> {
  return new Promise((resolve, reject) => (client as any)[method](req, metadata, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res))));
}

describe("@grpc/grpc-js over TLS", () => {
  it("creates and gets with the admin's client certificate", async () => {
    const creds = grpc.credentials.createSsl(Buffer.from(cp.pki.ca.cert), Buffer.from(cp.pki.admin.key), Buffer.from(cp.pki.admin.cert));
    const client = new ConfigMapService(target(), creds);
    try {
      const created = await unary<any>(client, "create", { configMap: { metadata: { name: "from-grpc-js" }, data: { lang: "js" } } });
      // (Only data and the resource version are compared: the direct gRPC path sends an object as its
      // stored bytes followed by a second `metadata` field carrying the resource version, which
      // protobuf parsers merge but protobufjs, under grpc-js's proto-loader, replaces.)
      expect(created.configMap.data).toEqual({ lang: "js" });
      expect(Number(created.configMap.metadata.resourceVersion)).toBeGreaterThan(0);
      const got = await unary<any>(client, "get", { namespace: "default", name: "from-grpc-js" });
      expect(got.configMap.data).toEqual({ lang: "js" });
      expect(got.configMap.metadata.resourceVersion).toBe(created.configMap.metadata.resourceVersion);
    } finally {
      client.close();
    }
  });

  it("lists with a bearer token (no client certificate), and is refused without one", async () => {
    const client = new ConfigMapService(target(), grpc.credentials.createSsl(Buffer.from(cp.pki.ca.cert)));
    try {
      const md = new grpc.Metadata();
      md.set("authorization", "Bearer grpc-js-token");
      const listed = await unary<any>(client, "list", { namespace: "default" }, md);
      expect(Array.isArray(listed.items)).toBe(true);
      const err = (await unary(client, "list", { namespace: "default" }).catch((e) => e)) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(err.details).toMatch(/^no credentials: /);
    } finally {
      client.close();
    }
  });

  it("watches with a certificate: the stream starts with the current state", async () => {
    const creds = grpc.credentials.createSsl(Buffer.from(cp.pki.ca.cert), Buffer.from(cp.pki.admin.key), Buffer.from(cp.pki.admin.cert));
    const client = new ConfigMapService(target(), creds);
    try {
      const stream = (client as any).watch({ namespace: "default" }) as grpc.ClientReadableStream<any>;
      const first = await new Promise<any>((resolve, reject) => {
        stream.once("data", resolve);
        stream.once("error", reject);
      });
      expect(["WATCH_EVENT_TYPE_ADDED", "WATCH_EVENT_TYPE_BOOKMARK"]).toContain(first.type);
      stream.cancel();
    } finally {
      client.close();
    }
  });
});
