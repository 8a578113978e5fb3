// skiffctl logs in-process: its helpers, and the command against the agent's unit harness (an
// in-process apiserver and a node agent on the fake runtime; skiffctl → apiserver → agent over mTLS). test/cli/logs.test.ts runs the real
// binary against real containers.
import { create } from "@bufbuild/protobuf";
import { appendFile, mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeSchema, type Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { startHarness, testPod, waitFor, type Harness } from "../agent/testing.ts";
import { formatLogRecord } from "../runtime/log-format.ts";
import { checkOneSince, defaultContainer, parseLimitBytes, parseSince, parseSinceTime, parseTail, podName } from "./logs.ts";
import { runSkiffctl } from "./main.ts";
import { adminConfigFile } from "./testing.ts";

describe("logs helpers", () => {
  it("pick the default container as kubectl does", () => {
    const pod = (containers: string[], init: string[] = [], annotation?: string) =>
      create(PodSchema, {
        metadata: { name: "p", annotations: annotation ? { "kubectl.kubernetes.io/default-container": annotation } : {} },
        spec: { containers: containers.map((name) => ({ name, image: "i" })), initContainers: init.map((name) => ({ name, image: "i" })) },
      });
    expect(defaultContainer(pod(["app"]))).toEqual({ name: "app" });
    expect(defaultContainer(pod(["a", "b"], ["setup"]))).toEqual({ name: "a", note: 'Defaulted container "a" out of: a, b, setup (init)' });
    expect(defaultContainer(pod(["a", "b"], [], "b"))).toEqual({ name: "b" });
  });

  it("read --tail, --since and the pod argument", () => {
    expect(parseTail(undefined)).toBeUndefined();
    expect(parseTail("-1")).toBeUndefined();
    expect(parseTail("0")).toBe(0n);
    expect(parseTail("20")).toBe(20n);
    expect(() => parseTail("-2")).toThrow(/-1 \(all lines\) or more/);
    expect(() => parseTail("ten")).toThrow(/whole number/);
    expect(parseSince("90s")).toBe(90n);
    expect(parseSince("1h30m")).toBe(5400n);
    expect(parseSince("1500ms")).toBe(2n);
    expect(() => parseSince("5")).toThrow(/duration such as 30s/);
    expect(parseSinceTime(undefined)).toBe("");
    expect(parseSinceTime("2024-05-01T10:00:00.5+02:00")).toBe("2024-05-01T10:00:00.5+02:00");
    expect(() => parseSinceTime("10:00")).toThrow('--since-time must be an RFC 3339 time such as 2024-05-01T10:00:00Z, got "10:00"');
    expect(() => checkOneSince("5m", "2024-05-01T10:00:00Z")).toThrow("at most one of `sinceTime` or `sinceSeconds` may be specified");
    expect(() => checkOneSince("5m", undefined)).not.toThrow();
    expect(parseLimitBytes("0")).toBeUndefined();
    expect(parseLimitBytes("100")).toBe(100n);
    expect(() => parseLimitBytes("-1")).toThrow("--limit-bytes must be greater than 0, got -1");
    expect(() => parseLimitBytes("1k")).toThrow('--limit-bytes must be a whole number of bytes, got "1k"');
    expect(podName("pod/web")).toBe("web");
    expect(podName("web")).toBe("web");
    expect(() => podName("deploy/web")).toThrow(/give POD or pod\/POD/);
  });
});

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ crashLoopBackoff: { initialMs: 20, maxMs: 50 } });
});
afterAll(async () => {
  await h?.close();
});

async function run(args: string[], signal = new AbortController().signal, onOut?: (all: string) => void) {
  let out = "";
  let err = "";
  const code = await runSkiffctl(args, {
    out: (t) => {
      out += t;
      onOut?.(out);
    },
    err: (t) => void (err += t),
    readStdin: async () => "",
    env: { SKIFF_SERVER: h.server.url, SKIFF_CONFIG: adminConfigFile() },
    signal,
  });
  return { code, out, err };
}

async function runningPod(name: string, spec = {}) {
  const created = await h.createPod(name, spec);
  await h.waitForPod(name, "Running", (p) => p.status?.phase === "Running");
  return (await h.containersOf(created))[0];
}

/** Lines as the runtime's logger records them, at one time. */
const records = (text: string, time = new Date()) =>
  Buffer.concat(text.split("\n").slice(0, -1).map((l) => formatLogRecord(time, "stdout", true, l)));

describe("skiffctl logs (fake runtime)", () => {
  it("prints the log, its last lines, and follows until interrupted (exit 0)", async () => {
    const c = await runningPod("talk");
    await mkdir(dirname(c.logPath), { recursive: true });
    await writeFile(c.logPath, records("one\ntwo\nthree\n"));
    expect(await run(["logs", "talk"])).toEqual({ code: 0, out: "one\ntwo\nthree\n", err: "" });
    expect((await run(["logs", "pod/talk", "--tail", "2", "-n", "default"])).out).toBe("two\nthree\n");
    expect((await run(["logs", "talk", "--tail", "-1"])).out).toBe("one\ntwo\nthree\n");

    const interrupt = new AbortController();
    let seen = "";
    const following = run(["logs", "talk", "-f", "--tail=1"], interrupt.signal, (all) => (seen = all));
    await waitFor("the last line", () => seen === "three\n");
    await appendFile(c.logPath, records("four\n"));
    await waitFor("the line written later", () => seen === "three\nfour\n");
    interrupt.abort();
    expect(await following).toEqual({ code: 0, out: "three\nfour\n", err: "" });
  });

  it("fails with one clear line and exit code 1", async () => {
    await h.pods.create(testPod("unscheduled", { nodeName: "" }));
    await h.createPod("two", { containers: [{ name: "a" }, { name: "b" }] });
    await h.createPod("stuck", { containers: [{ name: "app", image: "local/none:1", imagePullPolicy: "Never" }] });
    await h.waitForPod("stuck", "ErrImageNeverPull", (p) => p.status?.containerStatuses[0]?.state?.waiting?.reason === "ErrImageNeverPull");
    // A node whose agent is gone: its port answers nothing.
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", () => r()));
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const ghost = await h.nodes.create(create(NodeSchema, { metadata: { name: "ghost" } }));
    ghost.status = create(NodeSchema, { status: { addresses: [{ type: "InternalIP", address: "127.0.0.1" }], daemonEndpoints: { kubeletEndpoint: { port: deadPort } } } }).status;
    await h.nodes.updateStatus(ghost as Node);
    await h.pods.create(testPod("haunted", { nodeName: "ghost" }));
    await h.nodes.create(create(NodeSchema, { metadata: { name: "blank" } }));
    await h.pods.create(testPod("blanknode", { nodeName: "blank" }));

    const cases: [string[], string | RegExp][] = [
      [["logs", "nope"], 'Error: pod "nope" not found in namespace "default"\n'],
      [["logs", "unscheduled"], 'Error: pod "unscheduled" is not scheduled to a node yet (phase Pending): it has no logs\n'],
      [["logs", "two", "-c", "zz"], 'Error: container "zz" is not valid for pod "two": choose one of: [a b]\n'],
      [["logs", "stuck"], 'Error: container "app" in pod "stuck" is waiting to start: ErrImageNeverPull\n'],
      [["logs", "two", "-c", "a", "-p"], 'Error: previous terminated container "a" in pod "two" not found\n'],
      [["logs", "two", "-c", "a", "--since", "5m", "--since-time", "2024-05-01T10:00:00Z"], "Error: at most one of `sinceTime` or `sinceSeconds` may be specified\n"],
      [["logs", "two", "-c", "a", "--since-time", "yesterday"], 'Error: --since-time must be an RFC 3339 time such as 2024-05-01T10:00:00Z, got "yesterday"\n'],
      [["logs", "two", "-c", "a", "--since", "-5m"], 'Error: --since must be a duration such as 30s, 5m or 1h30m, got "-5m"\n'],
      [["logs", "haunted"], new RegExp(`^Error: cannot reach the agent of node "ghost" at https://127\\.0\\.0\\.1:${deadPort}: connect ECONNREFUSED`)],
      [["logs", "blanknode"], 'Error: node "blank" has no InternalIP address in its status: has its agent registered it yet?\n'],
      [["logs", "talk", "--tail", "x"], 'Error: --tail must be a whole number of lines (-1 for all), got "x"\n'],
    ];
    for (const [args, want] of cases) {
      const r = await run(args);
      expect(r.err, args.join(" ")).toMatch(want);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.out).toBe("");
    }
    // Without -c in a pod of two: the first, with kubectl's note on stderr.
    const two = await run(["logs", "two"]);
    expect(two.err).toBe('Defaulted container "a" out of: a, b\n');
    expect(two.code).toBe(0);
  });

  it("--since, --since-time and --timestamps pick lines by the time they were written", async () => {
    const c = await runningPod("clock");
    const now = Date.now();
    const at = (secondsAgo: number) => new Date(now - secondsAgo * 1000);
    await mkdir(dirname(c.logPath), { recursive: true });
    await writeFile(c.logPath, Buffer.concat([records("old\n", at(7200)), records("recent\n", at(90)), records("new\n", at(2))]));
    expect(await run(["logs", "clock", "--since", "1h"])).toEqual({ code: 0, out: "recent\nnew\n", err: "" });
    expect((await run(["logs", "clock", "--since=30s"])).out).toBe("new\n");
    expect((await run(["logs", "clock", "--since-time", at(90).toISOString()])).out).toBe("recent\nnew\n");
    expect((await run(["logs", "clock", "--timestamps", "--tail", "2"])).out).toBe(`${at(90).toISOString()} recent\n${at(2).toISOString()} new\n`);
    expect((await run(["logs", "clock", "--since", "1h", "--tail", "1", "--timestamps"])).out).toBe(`${at(2).toISOString()} new\n`);
    expect(await run(["logs", "clock", "--since", "1h", "--limit-bytes", "9"])).toEqual({ code: 0, out: "recent\nne", err: "" });
  });
});
