// Container log rotation on real parts (cluster.ts): the logger rotates a container's log at
// --container-log-max-size keeping --container-log-max-files files, and the agent's log service
// reads across the rotated files: a follow started before the rotations sees every line after it
// once, in order; --tail and --previous reach into rotated files.
//
// The container writes in batches, each released by the test (an exec creating /tmp/go<n>) once
// the follower has seen the previous one: the follower is never a whole rotation behind, with no
// timing assumed.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, waitFor, type Cluster } from "./cluster.ts";

const MAX_SIZE = 64 * 1024;
const MAX_FILES = 3;
const BATCHES = 16;
const LINES_PER_BATCH = 300;
const PAD = "x".repeat(60);

let c: Cluster;

beforeAll(async () => {
  c = await startCluster({ runtime: { containerLog: { maxSizeBytes: MAX_SIZE, maxFiles: MAX_FILES } } });
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

/** What the container prints: batch b, line l. */
const line = (b: number, l: number) => `b${b} l${l} ${PAD}`;
const batch = (b: number) => Array.from({ length: LINES_PER_BATCH }, (_, l) => `${line(b, l)}\n`).join("");

const SCRIPT = [
  "echo waiting",
  "b=0",
  `while [ $b -lt ${BATCHES} ]; do`,
  "  until [ -e /tmp/go$b ]; do sleep 0.05; done",
  "  l=0",
  `  while [ $l -lt ${LINES_PER_BATCH} ]; do echo "b$b l$l ${PAD}"; l=$((l+1)); done`,
  "  b=$((b+1))",
  "done",
  "echo done",
].join("\n");

describe("container log rotation", () => {
  it("keeps at most max-files files of max-size; a follow sees every line across rotations; --tail and --previous reach rotated files", async () => {
    const created = await c.createPod("chatty", { restartPolicy: "Always", containers: [{ name: "app", command: ["sh", "-c", SCRIPT] }] });
    const uid = created.metadata!.uid;
    await c.waitForPod("chatty", "Running", (p) => p.status?.phase === "Running");
    const [first] = await c.containersOf(uid, "app");

    let seen = "";
    const stop = new AbortController();
    const follow = c.logs("chatty", { follow: true, signal: stop.signal, onData: (t) => (seen += t) });
    await waitFor("the follower attached", () => seen.includes("waiting\n"));
    let want = "waiting\n";
    for (let b = 0; b < BATCHES; b++) {
      const r = await c.runtime.exec(first.id, ["touch", `/tmp/go${b}`], 10_000);
      expect(r.exitCode).toBe(0);
      want += batch(b);
      await waitFor(`the follower saw batch ${b}`, () => seen.length >= want.length || undefined, 30_000);
    }
    want += "done\n";
    await waitFor("the follower saw the end", () => seen.length >= want.length || undefined, 30_000);
    stop.abort();
    await follow;
    expect(seen === want, "the followed output is every line once, in order").toBe(true);

    // The first attempt ended (restartPolicy Always: a second one waits): its files are final.
    await waitFor("the second attempt", async () => ((await c.containersOf(uid, "app")).length === 2 ? true : undefined), 30_000);
    const dir = dirname(first.logPath);
    const files = readdirSync(dir).filter((f) => f.startsWith("0.log"));
    expect(files.length).toBe(MAX_FILES); // 0.log and two rotated ones, though it wrote ~8 files' worth
    for (const f of files) expect(statSync(`${dir}/${f}`).size).toBeLessThanOrEqual(MAX_SIZE);

    const all = want.split("\n").slice(0, -1);
    const previous = await c.logs("chatty", { previous: true });
    const kept = previous.split("\n").slice(0, -1);
    expect(kept.length).toBeGreaterThan(LINES_PER_BATCH); // more than one file's worth: it reached rotated files
    expect(kept).toEqual(all.slice(all.length - kept.length));

    // --tail: more lines than the current file holds, so the tail starts in a rotated file.
    const inCurrent = readFileSync(first.logPath, "utf8").split("\n").length - 1;
    const tail = await c.logs("chatty", { previous: true, tailLines: inCurrent + 10 });
    expect(tail.split("\n").slice(0, -1)).toEqual(all.slice(all.length - inCurrent - 10));
  }, 180_000);
});
