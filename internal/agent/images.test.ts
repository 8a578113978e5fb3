import { afterEach, describe, expect, it } from "vitest";
import { createFakeRuntime } from "../runtime/fake/fake.ts";
import { cstatus, startHarness, waitFor, type Harness } from "./testing.ts";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function countPulls(harness: Harness): string[] {
  const pulls: string[] = [];
  const orig = harness.runtime.pullImage;
  harness.runtime.pullImage = async (ref, o) => {
    pulls.push(ref);
    return orig(ref, o);
  };
  return pulls;
}

describe("images", () => {
  it("pull failure: ErrImagePull with the registry's message, then ImagePullBackOff, then retries", async () => {
    h = await startHarness({ imagePullBackoff: { initialMs: 400, maxMs: 5000 } });
    const pulls = countPulls(h);
    h.runtime.failPull("registry.local/nope:1", "manifest unknown: registry.local/nope:1 not found");
    await h.createPod("pull", { containers: [{ name: "app", image: "registry.local/nope:1" }] });
    let p = await h.waitForPod("pull", "ErrImagePull", (p) => cstatus(p)?.state?.waiting?.reason === "ErrImagePull");
    expect(cstatus(p)!.state!.waiting!.message).toBe("manifest unknown: registry.local/nope:1 not found");
    expect(p.status!.phase).toBe("Pending");
    p = await h.waitForPod("pull", "ImagePullBackOff", (p) => cstatus(p)?.state?.waiting?.reason === "ImagePullBackOff");
    expect(cstatus(p)!.state!.waiting!.message).toBe('Back-off pulling image "registry.local/nope:1": manifest unknown: registry.local/nope:1 not found');
    // The back-off ends and the pull is tried again.
    await waitFor("second pull", () => pulls.length >= 2);
  });

  it("a command that cannot start: RunContainerError with the runtime's message, and the agent carries on", async () => {
    h = await startHarness();
    h.runtime.failCommand("/no/such/binary", 'exec: "/no/such/binary": stat /no/such/binary: no such file or directory');
    await h.createPod("badcmd", { containers: [{ name: "app", command: ["/no/such/binary"] }] });
    await h.createPod("good");
    const p = await h.waitForPod("badcmd", "RunContainerError", (p) => cstatus(p)?.state?.waiting?.reason === "RunContainerError");
    expect(cstatus(p)!.state!.waiting!.message).toContain("no such file or directory");
    expect(p.status!.phase).toBe("Pending");
    // The failed container is not left behind; other pods are unaffected.
    expect((await h.containersOf(p)).filter((c) => c.state === "created")).toEqual([]);
    await h.waitForPod("good", "Running", (p) => p.status?.phase === "Running");
  });

  it("imagePullPolicy Never with a missing image: ErrImageNeverPull", async () => {
    h = await startHarness();
    const pulls = countPulls(h);
    await h.createPod("never", { containers: [{ name: "app", image: "local/only:1", imagePullPolicy: "Never" }] });
    const p = await h.waitForPod("never", "ErrImageNeverPull", (p) => cstatus(p)?.state?.waiting?.reason === "ErrImageNeverPull");
    expect(cstatus(p)!.state!.waiting!.message).toBe('Container image "local/only:1" is not present with pull policy of Never');
    expect(pulls).toEqual([]);
  });

  it("IfNotPresent uses an image that is there; Always pulls at every start", async () => {
    h = await startHarness({ runtime: createFakeRuntime({ images: ["busybox:1.36"] }), crashLoopBackoff: { initialMs: 20, maxMs: 50 } });
    const pulls = countPulls(h);
    await h.createPod("present", { containers: [{ name: "app", image: "busybox:1.36", imagePullPolicy: "IfNotPresent" }] });
    await h.waitForPod("present", "Running", (p) => p.status?.phase === "Running");
    expect(pulls).toEqual([]);
    const created = await h.createPod("always", { containers: [{ name: "app", image: "busybox:1.36", imagePullPolicy: "Always" }] });
    await h.waitForPod("always", "Running", (p) => p.status?.phase === "Running");
    expect(pulls).toEqual(["busybox:1.36"]);
    const [c] = await h.containersOf(created);
    h.runtime.exit(c.id, 1);
    await h.waitForPod("always", "restarted", (p) => cstatus(p)?.restartCount === 1 && !!cstatus(p)?.state?.running);
    expect(pulls).toEqual(["busybox:1.36", "busybox:1.36"]);
  });
});
