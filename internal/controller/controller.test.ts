import { Code, ConnectError } from "@connectrpc/connect";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { logReconcileError } from "./controller.ts";

describe("logReconcileError", () => {
  it("logs a lost write race at debug and every other failure as a warning", () => {
    const lines: { level: number; msg: string }[] = [];
    const log = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    logReconcileError(log, "default/web", new ConnectError('operation cannot be fulfilled on endpoints "web"', Code.Aborted));
    expect(lines).toEqual([]);
    logReconcileError(log, "default/web", new ConnectError("etcd unavailable", Code.Unavailable));
    logReconcileError(log, "default/web", new Error("boom"));
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      [40, "reconcile failed; retrying"],
      [40, "reconcile failed; retrying"],
    ]);
  });
});
