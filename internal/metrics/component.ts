// What a leader-elected component (scheduler, controller-manager) reports about itself: ready once
// its informers synced while leading, and ready while standing by (a standby is healthy: it takes
// over when the leader goes), as Kubernetes' components answer /readyz.
import type { HealthChecks } from "./health.ts";

export interface LeaderState {
  /** Competes for a lease (false: runs alone, always "leading"). */
  electing: boolean;
  leading(): boolean;
  /** Its informers have synced (meaningful while leading). */
  synced(): boolean;
}

export function addLeaderChecks(health: HealthChecks, s: LeaderState): void {
  health.add(
    "leader-election",
    () => (!s.electing ? { ok: true, message: "not electing: runs alone" } : s.leading() ? { ok: true, message: "leading" } : { ok: true, message: "standing by: another replica leads" }),
    { readyOnly: true },
  );
  health.add(
    "informer-sync",
    () => (!s.leading() ? { ok: true, message: "standing by: informers start when leading" } : s.synced() ? { ok: true } : { ok: false, message: "informers have not synced yet" }),
    { readyOnly: true },
  );
}
