// Named health checks behind /healthz, /livez and /readyz, answered as Kubernetes does: 200 "ok"
// or 503, and with `?verbose` one line per check (`[+]name ok`, `[-]name failed: why`), then
// "healthz check passed" / "… failed". A check may pass with a note ("standing by").
export interface CheckResult {
  ok: boolean;
  /** Shown after the check's name with ?verbose. */
  message?: string;
}

export type Check = () => CheckResult | boolean | Promise<CheckResult | boolean>;

export interface HealthChecks {
  /** A check of liveness (restart me if it fails) and, unless `readyOnly`, also of readiness. */
  add(name: string, check: Check, opts?: { readyOnly?: boolean }): void;
  /** The answer for "/healthz", "/livez" or "/readyz"; `verbose` lists every check. */
  report(path: "/healthz" | "/livez" | "/readyz", verbose: boolean): Promise<{ status: number; body: string }>;
}

export function createHealthChecks(): HealthChecks {
  const checks: { name: string; check: Check; readyOnly: boolean }[] = [{ name: "ping", check: () => true, readyOnly: false }];
  return {
    add(name, check, opts) {
      checks.push({ name, check, readyOnly: opts?.readyOnly ?? false });
    },
    async report(path, verbose) {
      const which = path === "/readyz" ? checks : checks.filter((c) => !c.readyOnly);
      const lines: string[] = [];
      let failed = 0;
      for (const c of which) {
        let r: CheckResult;
        try {
          const v = await c.check();
          r = typeof v === "boolean" ? { ok: v } : v;
        } catch (err) {
          r = { ok: false, message: err instanceof Error ? err.message : String(err) };
        }
        if (!r.ok) failed++;
        lines.push(r.ok ? `[+]${c.name} ok${r.message ? `: ${r.message}` : ""}` : `[-]${c.name} failed${r.message ? `: ${r.message}` : ""}`);
      }
      const kind = path.slice(1);
      const status = failed === 0 ? 200 : 503;
      if (!verbose) return { status, body: failed === 0 ? "ok\n" : `${lines.filter((l) => l.startsWith("[-]")).join("\n")}\n${kind} check failed\n` };
      return { status, body: `${lines.join("\n")}\n${kind} check ${failed === 0 ? "passed" : "failed"}\n` };
    },
  };
}
