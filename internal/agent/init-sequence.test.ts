import { afterEach, describe, expect, it } from "vitest";
import { cstatus, startHarness, waitFor, type Harness } from "./testing.ts";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe("the init sequence", () => {
  it("starts a sidecar only once the init containers before it completed", async () => {
    h = await startHarness();
    const pod = await h.createPod("seq", { initContainers: [{ name: "setup" }, { name: "proxy", restartPolicy: "Always" }], containers: [{ name: "app" }] });
    // The status written by the pass that started setup: proxy was not started in it.
    await h.waitForPod("seq", "setup running", (p) => !!cstatus(p, "setup")?.state?.running);
    expect(await h.containersOf(pod, "proxy")).toEqual([]);
    const [setup] = await h.containersOf(pod, "setup");
    h.runtime.exit(setup!.id, 0);
    await waitFor("proxy, then app, running", async () => (await h!.containersOf(pod, "app")).some((c) => c.state === "running"));
    const proxy = (await h.containersOf(pod, "proxy"))[0]!;
    const app = (await h.containersOf(pod, "app"))[0]!;
    expect(proxy.state).toBe("running");
    expect(proxy.startedAt!.getTime()).toBeLessThanOrEqual(app.startedAt!.getTime());
  });
});
