// etcd killed (-9) for 20 s under a steady write load: the apiserver says it is not ready, writes
// fail with UNAVAILABLE well inside their deadline instead of hanging, and once etcd is back every
// write that succeeded — before, during the recovery, after — reaches a watcher that resumes from
// the last resourceVersion it saw: no event lost, none twice, resourceVersions only increasing.
import { Code, ConnectError } from "@connectrpc/connect";
import { performance } from "node:perf_hooks";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { ConfigMap } from "../../gen/skiff/v1alpha1/config_pb.js";
import { configMap } from "../fixtures/objects.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { getTls } from "../harness/pki.ts";

const OUTAGE_MS = 20_000;
/** The deadline every write of the test carries. */
const WRITE_DEADLINE_MS = 5_000;

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane();
});
afterAll(async () => {
  await cp?.stop();
});

const readyz = async () => (await getTls(`${cp.server.url}/readyz`, { ca: cp.pki.ca.cert })).status;

/** A watcher of ConfigMaps in "default" that resumes from the last resourceVersion after any error. */
function recordingWatcher() {
  const seen: { name: string; rv: bigint }[] = [];
  const errors: string[] = [];
  const abort = new AbortController();
  let markLive!: () => void;
  const live = new Promise<void>((r) => (markLive = r));
  void (async () => {
    let rv = "";
    while (!abort.signal.aborted) {
      try {
        for await (const ev of cp.client<ConfigMap>("ConfigMap").watch("default", { resourceVersion: rv, signal: abort.signal })) {
          rv = ev.object.metadata?.resourceVersion || rv;
          if (ev.type === "BOOKMARK") markLive();
          else seen.push({ name: ev.object.metadata!.name, rv: BigInt(ev.object.metadata!.resourceVersion) });
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        errors.push(ConnectError.from(err).code === Code.OutOfRange ? "too old" : String(err));
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  })();
  return { seen, errors, live, stop: () => abort.abort() };
}

it("etcd down 20 s: /readyz fails, writes get UNAVAILABLE within their deadline, the watch resumes without a gap", async () => {
  const cms = cp.client<ConfigMap>("ConfigMap");
  const watcher = recordingWatcher();
  await watcher.live;

  // Load: one writer creating ConfigMaps back to back, noting what succeeded and how failures ended.
  const written = new Map<string, bigint>();
  const failures: { code: Code; ms: number; message: string }[] = [];
  let writing = true;
  let n = 0;
  const writer = (async () => {
    while (writing) {
      const name = `cm-${n++}`;
      const t0 = performance.now();
      try {
        const cm = await cms.create(configMap(name, { i: String(n) }), { timeoutMs: WRITE_DEADLINE_MS });
        written.set(name, BigInt(cm.metadata!.resourceVersion));
      } catch (err) {
        failures.push({ code: ConnectError.from(err).code, ms: performance.now() - t0, message: ConnectError.from(err).rawMessage });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
  await expect.poll(() => written.size, { timeout: 10_000 }).toBeGreaterThan(20);
  expect(await readyz()).toBe(200);

  await cp.etcd.kill();
  const downAt = performance.now();
  await expect.poll(readyz, { timeout: 10_000 }).toBe(503);
  await expect.poll(() => failures.length, { timeout: 10_000 }).toBeGreaterThan(3);
  const left = OUTAGE_MS - (performance.now() - downAt);
  if (left > 0) await new Promise((r) => setTimeout(r, left));
  const failedDuringOutage = failures.length;
  await cp.etcd.restart();

  await expect.poll(readyz, { timeout: 30_000 }).toBe(200);
  const afterRestart = written.size;
  await expect.poll(() => written.size, { timeout: 30_000 }).toBeGreaterThan(afterRestart + 20);
  writing = false;
  await writer;

  // Every failed write was refused as unavailable (or had its deadline hit by the client), and
  // none waited longer than its deadline plus a margin for the answer to arrive.
  expect(failedDuringOutage).toBeGreaterThan(3);
  for (const f of failures) {
    expect([Code.Unavailable, Code.DeadlineExceeded], `${Code[f.code]}: ${f.message}`).toContain(f.code);
    expect(f.ms).toBeLessThan(WRITE_DEADLINE_MS + 1_000);
  }
  // Most refusals are quick (connection refused → UNAVAILABLE), not a deadline running out.
  expect(failures.filter((f) => f.code === Code.Unavailable).length).toBeGreaterThan(failures.length / 2);

  // The watch saw every successful write exactly once, in resourceVersion order. Wait for each of
  // them by name, not for a count: a write that failed for its client may still have been committed
  // (etcd went away before the answer came back), and the watch rightly delivers it too, so the
  // count can be reached while the last successful write is still on its way.
  const seenNames = () => new Set(watcher.seen.map((s) => s.name));
  await expect.poll(() => [...written.keys()].filter((name) => !seenNames().has(name)), { timeout: 15_000 }).toEqual([]);
  watcher.stop();
  const byName = new Map(watcher.seen.map((s) => [s.name, s.rv]));
  expect(watcher.seen.length).toBe(byName.size);
  for (const [name, rv] of written) expect(byName.get(name), name).toBe(rv);
  // Anything else the watch saw is one of the failed writes, committed after all.
  expect(watcher.seen.length - written.size).toBeLessThanOrEqual(failures.length);
  for (let i = 1; i < watcher.seen.length; i++) expect(watcher.seen[i].rv).toBeGreaterThan(watcher.seen[i - 1].rv);
  expect(watcher.errors.filter((e) => e === "too old")).toEqual([]);
}, 120_000);
