// `skiff etcd-snapshot save|ls|prune|delete` (the real command, a child process) against a real
// etcd over TLS: files land 0600 under the directory, each with a sidecar whose sha256 matches
// it; etcdctl accepts the snapshot; prune keeps the newest; delete removes by name; bad input is
// refused with the flag named.
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { fileSha256, listSnapshots, type SnapshotInfo } from "../../internal/etcdsnapshot/snapshot.ts";
import { SCHEDULED_SNAPSHOT_NAME, startSnapshotSchedule } from "../../internal/etcdsnapshot/schedule.ts";
import { restoreSnapshot } from "../../internal/etcdsnapshot/restore.ts";
import { testPki } from "../../internal/pki/testing.ts";
import { createEtcdStore } from "../../internal/storage/etcd.ts";
import { startEtcd, type EtcdServer } from "../harness/etcd.ts";
import { makeTempDir, removeTempDir } from "../harness/tmp.ts";

const run = promisify(execFile);
const SKIFF = fileURLToPath(new URL("../../cmd/skiff.ts", import.meta.url));

let etcd: EtcdServer;
let dir: string;
let etcdFlags: string[];
/** The revision of a write made before any snapshot: each snapshot holds at least it. */
let written = 0;
beforeAll(async () => {
  etcd = await startEtcd();
  const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/snap-test", tls: etcd.tls });
  written = (await store.create("/k", Buffer.from("v"))).modRevision;
  await store.close();
  dir = makeTempDir("skiff-snapshots-");
  const pki = await testPki();
  etcdFlags = ["--etcd-endpoint", etcd.endpoint, "--etcd-cafile", pki.files("ca").cert, "--etcd-certfile", pki.files("apiserver-client").cert, "--etcd-keyfile", pki.files("apiserver-client").key];
});
afterAll(async () => {
  await etcd?.stop();
  if (dir) removeTempDir(dir);
});

async function skiff(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [SKIFF, "etcd-snapshot", ...args], { env: { ...process.env, NO_COLOR: "1" } });
    return { code: 0, out: stdout, err: stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout, err: e.stderr };
  }
}

const snapDir = () => join(dir, "snaps");
const where = () => ["--dir", snapDir(), "--node-name", "n1"];

it("saves snapshots etcdctl can restore, lists them newest first, prunes the oldest and deletes by name", async () => {
  const saved: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await skiff("save", ...where(), ...etcdFlags, "--name", "nightly");
    expect(r.code, r.err).toBe(0);
    saved.push(/snapshot (\S+) saved/.exec(r.out)![1]);
    // File names carry whole seconds: a second apart, each name is new.
    await new Promise((res) => setTimeout(res, 1100));
  }
  for (const f of saved) {
    expect(f).toMatch(/^nightly-n1-\d+$/);
    const path = join(snapDir(), f);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const info = JSON.parse(readFileSync(`${path}.json`, "utf8")) as SnapshotInfo;
    expect(info.sha256).toBe(await fileSha256(path));
    expect(Number(info.revision)).toBeGreaterThanOrEqual(written);
    expect(written).toBeGreaterThan(1);
  }
  // No temp files left behind.
  expect(readdirSync(snapDir()).filter((f) => f.startsWith("."))).toEqual([]);

  const ls = await skiff("ls", ...where());
  expect(ls.code, ls.err).toBe(0);
  expect(ls.out.split("\n").slice(1, 4).map((l) => l.split(/\s+/)[0])).toEqual([...saved].reverse());

  const prune = await skiff("prune", ...where(), "--name", "nightly", "--retention", "2");
  expect(prune.code, prune.err).toBe(0);
  expect(prune.out).toContain(`removed ${saved[0]}`);
  expect(existsSync(join(snapDir(), saved[0]))).toBe(false);
  expect(existsSync(join(snapDir(), `${saved[0]}.json`))).toBe(false);

  const del = await skiff("delete", ...where(), saved[1]);
  expect(del.code, del.err).toBe(0);
  expect(existsSync(join(snapDir(), saved[1]))).toBe(false);
  const left = await skiff("ls", ...where());
  expect(left.out).toContain(saved[2]);
  expect(left.out).not.toContain(saved[1]);

  // The file is a real etcd snapshot: etcdctl restores it into a data dir.
  const restored = await restoreSnapshot(join(snapDir(), saved[2]), { dataDir: join(dir, "restored"), memberName: "m", peerUrl: "http://127.0.0.1:1" });
  expect(restored.movedAside).toBeUndefined();
  expect(existsSync(join(dir, "restored", "member", "snap", "db"))).toBe(true);
}, 300_000);

it("refuses a damaged snapshot before touching the data dir, and bad names and flags with the flag named", async () => {
  const r = await skiff("save", ...where(), ...etcdFlags, "--name", "x");
  const file = join(snapDir(), /snapshot (\S+) saved/.exec(r.out)![1]);
  const bytes = readFileSync(file);
  bytes[bytes.length - 100] ^= 0xff;
  writeFileSync(file, bytes);
  await expect(restoreSnapshot(file, { dataDir: join(dir, "never"), memberName: "m", peerUrl: "http://127.0.0.1:1" })).rejects.toThrow(/is damaged: its sha256 is/);
  expect(existsSync(join(dir, "never"))).toBe(false);

  const badName = await skiff("save", ...where(), ...etcdFlags, "--name", "../evil");
  expect(badName.code).toBe(1);
  expect(badName.err).toMatch(/--name "..\/evil" is not a valid snapshot name/);
  const badRetention = await skiff("prune", ...where(), "--retention", "0");
  expect(badRetention.code).toBe(1);
  expect(badRetention.err).toMatch(/--retention must be a whole number ≥ 1/);
  const missing = await skiff("delete", ...where(), "nope-n1-1");
  expect(missing.code).toBe(1);
  expect(missing.err).toMatch(/snapshot "nope-n1-1" not found/);
  const noEtcd = await skiff("save", ...where(), "--state-dir", join(dir, "nothing-here"));
  expect(noEtcd.code).toBe(1);
  expect(noEtcd.err).toMatch(/--etcd-cafile: cannot read .*ca\.crt/);
}, 300_000);

it("takes scheduled snapshots at each cron tick and keeps only the retention's newest", async () => {
  const scheduled = join(dir, "scheduled");
  const log = { info: () => {}, error: (o: unknown) => console.error("scheduled snapshot failed", o) } as never;
  // Every second (croner's six-field form): ticks come faster than the test looks.
  const schedule = startSnapshotSchedule({ conn: { endpoints: [etcd.endpoint], tls: etcd.tls }, dir: scheduled, node: "n1", cron: "* * * * * *", retention: 2, log });
  const seen = new Set<string>();
  try {
    await waitUntil(async () => {
      const list = await listSnapshots(scheduled);
      for (const s of list) seen.add(s.file);
      return seen.size >= 4;
    });
  } finally {
    await schedule.stop();
  }
  // After the last tick's prune: two are left, the newest, of the four or more taken.
  const left = await listSnapshots(scheduled);
  expect(left.length).toBe(2);
  expect(left.every((s) => s.name === SCHEDULED_SNAPSHOT_NAME && s.node === "n1")).toBe(true);
  for (const f of seen) if (f < left[1].file) expect(existsSync(join(scheduled, f)), `${f} pruned`).toBe(false);
}, 300_000);

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 200));
  }
}
