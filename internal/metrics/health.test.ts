// /healthz, /livez and /readyz answers as Kubernetes gives them, and a standby that is still ready.
import { describe, expect, it } from "vitest";
import { addLeaderChecks } from "./component.ts";
import { createHealthChecks } from "./health.ts";

describe("health checks", () => {
  it("lists each check with ?verbose and fails readiness only on readiness checks", async () => {
    const h = createHealthChecks();
    let reachable = false;
    h.add("apiserver", () => ({ ok: reachable, message: reachable ? undefined : "cannot reach the apiserver" }), { readyOnly: true });
    expect(await h.report("/livez", false)).toEqual({ status: 200, body: "ok\n" });
    expect((await h.report("/readyz", false)).status).toBe(503);
    expect(await h.report("/readyz", true)).toEqual({ status: 503, body: "[+]ping ok\n[-]apiserver failed: cannot reach the apiserver\nreadyz check failed\n" });
    reachable = true;
    expect(await h.report("/readyz", true)).toEqual({ status: 200, body: "[+]ping ok\n[+]apiserver ok\nreadyz check passed\n" });
  });

  it("a component standing by is ready and says so; a leader is ready once its informers synced", async () => {
    const h = createHealthChecks();
    const s = { leading: false, synced: false };
    addLeaderChecks(h, { electing: true, leading: () => s.leading, synced: () => s.synced });
    const standby = await h.report("/readyz", true);
    expect(standby.status).toBe(200);
    expect(standby.body).toContain("[+]leader-election ok: standing by: another replica leads");
    s.leading = true;
    expect(await h.report("/readyz", true)).toMatchObject({ status: 503, body: expect.stringContaining("[-]informer-sync failed: informers have not synced yet") });
    s.synced = true;
    expect(await h.report("/readyz", false)).toEqual({ status: 200, body: "ok\n" });
  });
});
