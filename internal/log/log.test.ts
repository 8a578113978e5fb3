import pino from "pino";
import { describe, expect, it } from "vitest";
import { componentLog } from "./log.ts";

describe("componentLog", () => {
  it("writes one component key holding the path, however deep the parts nest", () => {
    const lines: string[] = [];
    const root = pino({ name: "skiff" }, { write: (s: string) => void lines.push(s) });
    const agent = componentLog(root, "agent");
    componentLog(componentLog(agent, "pod-routing"), "node-informer").info({ podUid: "u1" }, "synced");
    agent.info("ready");
    expect(lines[0].match(/"component"/g)).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({ name: "skiff", component: "agent/pod-routing/node-informer", podUid: "u1", msg: "synced" });
    expect(JSON.parse(lines[1])).toMatchObject({ component: "agent", msg: "ready" });
  });
});
