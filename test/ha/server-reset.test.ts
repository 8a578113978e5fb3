// Restoring a snapshot on a 3-server control plane (`skiff server` processes in network
// namespaces, test/ha/netns-servers.ts): s1 restores into a new one-member cluster with
// `--cluster-reset --cluster-reset-restore-path`; s2 started again with its old etcd data stops
// with one line saying what to do (it never waits on the old quorum nor forms a cluster beside
// s1's); with that data moved aside s2 and s3 rejoin with the server token, as a user would.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { existsSync, renameSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ConfigMapSchema, type ConfigMap } from "../../gen/skiff/v1alpha1/config_pb.js";
import { NamespaceSchema, type Namespace } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { waitFor } from "../../internal/agent/testing.ts";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { createNetnsServers, type NetnsServers } from "./netns-servers.ts";

let c: NetnsServers;
let serverToken: string;

beforeAll(async () => {
  c = await createNetnsServers("skiff-server-reset-");
  const s1 = await c.start("s1", 21, ["--cluster-init"]);
  const r = await c.skiff(["token", "create", "--role", "server", "--ttl", "1h", "--server", s1.url, ...c.adminFlags()]);
  expect(r.code, r.stderr).toBe(0);
  serverToken = r.stdout.trim();
  await c.start("s2", 22, ["--server", s1.url, "--token", serverToken]);
  await c.start("s3", 23, ["--server", s1.url, "--token", serverToken]);
}, 400_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

const gone = (err: unknown) => ConnectError.from(err).code === Code.NotFound;

it("a snapshot restored on s1 brings a deleted namespace back; s2 with old etcd data refuses to start and says what to do; s2 and s3 rejoin and s3 serves writes", async () => {
  expect(await c.memberNames("s1")).toEqual(["s1", "s2", "s3"]);
  const transport = c.admin();
  const namespaces = createResourceClient<Namespace>(transport, "Namespace");
  const configMaps = createResourceClient<ConfigMap>(transport, "ConfigMap");
  await namespaces.create(create(NamespaceSchema, { metadata: { name: "shop" } }));
  await configMaps.create(create(ConfigMapSchema, { metadata: { name: "settings", namespace: "shop" }, data: { color: "blue" } }));

  const s1 = c.servers.get("s1")!;
  const saved = await c.skiffIn("s1", ["etcd-snapshot", "save", "--state-dir", s1.dataDir, "--name", "before-delete", "--node-name", "s1"]);
  expect(saved.code, saved.stderr).toBe(0);
  const file = /snapshot (\S+) saved in (\S+) /.exec(saved.stdout);
  expect(file, saved.stdout).toBeTruthy();
  const snapshot = join(file![2], file![1]);

  await namespaces.delete("", "shop");
  await waitFor("namespace shop gone", () => namespaces.get("", "shop").then(() => false, gone), 120_000);

  for (const s of ["s1", "s2", "s3"]) await c.servers.get(s)!.proc.stop();
  c.servers.clear();

  const reset = await c.start("s1", 21, ["--cluster-reset", "--cluster-reset-restore-path", snapshot]);
  expect(await c.memberNames("s1")).toEqual(["s1"]);

  // s2 as its systemd unit would start it: its etcd data is the old cluster's.
  const stale = await c.startToEnd("s2", 22, ["--server", reset.url, "--token", serverToken]);
  expect(stale.code, stale.stderr).toBe(1);
  const s2Etcd = join(c.dir, "s2", "etcd");
  expect(stale.stderr).toContain(`error: this server's etcd member is not in the cluster any more (another server reset it from a snapshot): move ${s2Etcd} aside and start again with --server URL --token K10… (role server) to rejoin`);
  expect(await c.memberNames("s1")).toEqual(["s1"]);

  // What that line says, for s2 and s3; each joins through a server already in.
  renameSync(s2Etcd, `${s2Etcd}-before-reset`);
  await c.start("s2", 22, ["--server", reset.url, "--token", serverToken]);
  const s3Etcd = join(c.dir, "s3", "etcd");
  renameSync(s3Etcd, `${s3Etcd}-before-reset`);
  const s3 = await c.start("s3", 23, ["--server", c.servers.get("s2")!.url, "--token", serverToken]);
  expect(await c.memberNames("s3")).toEqual(["s1", "s2", "s3"]);
  expect(existsSync(join(`${s3Etcd}-before-reset`, "member"))).toBe(true);

  // The restored state, read and written through s3's apiserver alone.
  const viaS3 = c.admin(["s3"]);
  await createResourceClient<Namespace>(viaS3, "Namespace").get("", "shop");
  const cms = createResourceClient<ConfigMap>(viaS3, "ConfigMap");
  expect((await cms.get("shop", "settings")).data).toEqual({ color: "blue" });
  await cms.create(create(ConfigMapSchema, { metadata: { name: "after-reset", namespace: "shop" }, data: { written: "through s3" } }));
  // ... and seen through s1's.
  expect((await createResourceClient<ConfigMap>(c.admin(["s1"]), "ConfigMap").get("shop", "after-reset")).data).toEqual({ written: "through s3" });
  expect(s3.proc.child.exitCode).toBeNull();
}, 900_000);
