// A removed container instance takes its log files (rotated ones too) with it: a crash loop keeps
// the running instance's log and the previous one's (logs --previous), not one per attempt.
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ContainerInfo } from "../runtime/runtime.ts";
import { cstatus, startHarness, waitFor, type Harness } from "./testing.ts";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function running(harness: Harness, uid: string, attempt: number): Promise<ContainerInfo> {
  return waitFor(`attempt ${attempt} running`, async () =>
    (await harness.runtime.listContainers()).find((c) => c.podUid === uid && c.attempt === attempt && c.state === "running"),
  );
}

/** The instance's log as the logger leaves it after a rotation: the current file and a rotated one. */
async function writeLogs(c: ContainerInfo): Promise<string[]> {
  const files = [c.logPath, `${c.logPath}.20260101-000000.000000001`];
  await mkdir(dirname(c.logPath), { recursive: true });
  for (const f of files) await writeFile(f, "2026-01-01T00:00:00Z stdout F hi\n");
  return files;
}

describe("log files of removed instances", () => {
  it("are removed with the instance; the running one's and the previous one's stay", async () => {
    h = await startHarness({ crashLoopBackoff: { initialMs: 20, maxMs: 50 } });
    const uid = (await h.createPod("loop")).metadata!.uid;
    const logs: string[][] = [];
    for (let attempt = 0; attempt <= 2; attempt++) {
      const c = await running(h, uid, attempt);
      logs.push(await writeLogs(c));
      if (attempt < 2) h.runtime.exit(c.id, 1);
    }
    await h.waitForPod("loop", "restartCount 2", (p) => cstatus(p)?.restartCount === 2);
    await waitFor("attempt 0 removed", async () => ((await h!.runtime.listContainers()).some((c) => c.attempt === 0) ? undefined : true));
    expect(logs[0].map(existsSync)).toEqual([false, false]);
    expect(logs[1].map(existsSync)).toEqual([true, true]); // previous
    expect(logs[2].map(existsSync)).toEqual([true, true]); // running
  });
});
