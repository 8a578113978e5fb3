import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { appendFile, mkdir, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AgentServiceLogsRequest } from "../../gen/skiff/v1alpha1/agent_service_pb.js";
import { PodService } from "../../gen/skiff/v1alpha1/pod_service_pb.js";
import { formatLogRecord, type LogStream } from "../runtime/log-format.ts";
import type { ContainerInfo } from "../runtime/runtime.ts";
import { LogRenderer, sinceOf, tailOffset } from "./logs.ts";
import { cstatus, startHarness, waitFor, type Harness } from "./testing.ts";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

type LogsInit = Partial<Omit<AgentServiceLogsRequest, "$typeName" | "$unknown">>;

/** The agent's log service as users reach it: PodService.Log on the apiserver, which dials the agent over mTLS. */
function logsClient(harness: Harness) {
  const client = createClient(PodService, harness.transport);
  return { logs: ({ pod, ...rest }: LogsInit) => client.log({ ...rest, name: pod }) };
}

async function readLogs(harness: Harness, req: LogsInit): Promise<string> {
  let out = "";
  for await (const chunk of logsClient(harness).logs({ namespace: "default", ...req })) out += Buffer.from(chunk.data).toString();
  return out;
}

async function logError(harness: Harness, req: LogsInit): Promise<ConnectError> {
  try {
    await readLogs(harness, req);
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected an error");
}

/** Text as the runtime's logger records it: one F record per line, all at one time, on stdout. */
function records(text: string, time: Date | string = new Date(), stream: LogStream = "stdout"): Buffer {
  const lines = text.split("\n");
  const last = lines.pop()!;
  return Buffer.concat([...lines.map((l) => formatLogRecord(time, stream, true, l)), ...(last ? [formatLogRecord(time, stream, false, last)] : [])]);
}

async function writeLog(c: ContainerInfo, text: string | Buffer): Promise<void> {
  await mkdir(dirname(c.logPath), { recursive: true });
  await writeFile(c.logPath, typeof text === "string" ? records(text) : text);
}

describe("AgentService.Logs (through PodService.Log)", () => {
  it("serves a container's log, its last lines, and the previous instance's", async () => {
    h = await startHarness({ crashLoopBackoff: { initialMs: 20, maxMs: 50 } });
    const created = await h.createPod("talk");
    await h.waitForPod("talk", "Running", (p) => p.status?.phase === "Running");
    const [first] = await h.containersOf(created);
    expect(first.logPath).toBe(join(h.rootDir, "pods", created.metadata!.uid, "logs", "app", "0.log"));
    await writeLog(first, "one\ntwo\nthree\n");
    expect(await readLogs(h, { pod: "talk" })).toBe("one\ntwo\nthree\n");
    expect(await readLogs(h, { pod: "talk", container: "app", tailLines: 2n })).toBe("two\nthree\n");
    expect(await readLogs(h, { pod: "talk", tailLines: 0n })).toBe("");
    expect((await logError(h, { pod: "talk", previous: true })).message).toContain('previous terminated container "app" in pod "talk" not found');

    h.runtime.exit(first.id, 1);
    await h.waitForPod("talk", "restarted", (p) => cstatus(p)?.restartCount === 1 && !!cstatus(p)?.state?.running);
    const second = (await h.containersOf(created)).find((c) => c.attempt === 1)!;
    await writeLog(second, "again\n");
    expect(await readLogs(h, { pod: "talk" })).toBe("again\n");
    expect(await readLogs(h, { pod: "talk", previous: true })).toBe("one\ntwo\nthree\n");
  });

  it("follows a log until the container exits", async () => {
    h = await startHarness();
    const created = await h.createPod("follow", { restartPolicy: "Never" });
    await h.waitForPod("follow", "Running", (p) => p.status?.phase === "Running");
    const [c] = await h.containersOf(created);
    await writeLog(c, "start\n");
    let got = "";
    const done = (async () => {
      for await (const chunk of logsClient(h!).logs({ namespace: "default", pod: "follow", follow: true })) got += Buffer.from(chunk.data).toString();
    })();
    await waitFor("first line", () => got === "start\n");
    await appendFile(c.logPath, records("more\n"));
    await waitFor("appended line", () => got === "start\nmore\n");
    await appendFile(c.logPath, records("last words\n", new Date(), "stderr"));
    h.runtime.exit(c.id, 0);
    await done;
    expect(got).toBe("start\nmore\nlast words\n");
  });

  it("answers NotFound, InvalidArgument or FailedPrecondition with a clear message", async () => {
    h = await startHarness();
    h.runtime.failPull("broken:1", "no such image");
    await h.createPod("two", { containers: [{ name: "a" }, { name: "b" }] });
    await h.createPod("waiting", { containers: [{ name: "app", image: "broken:1" }] });
    await h.waitForPod("two", "Running", (p) => p.status?.phase === "Running");
    await h.waitForPod("waiting", "ErrImagePull", (p) => !!cstatus(p)?.state?.waiting?.reason.includes("ImagePull"));

    let err = await logError(h, { pod: "nope" });
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe('pod "nope" not found in namespace "default"');
    err = await logError(h, { pod: "two", container: "c" });
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe('container "c" is not valid for pod "two": choose one of: [a b]');
    err = await logError(h, { pod: "two" });
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("a container name must be specified for pod two, choose one of: [a b]");
    err = await logError(h, { pod: "waiting" });
    expect(err.code).toBe(Code.FailedPrecondition);
    // The reason as the agent's informer last saw the status.
    expect(err.rawMessage).toMatch(/^container "app" in pod "waiting" is waiting to start: (ContainerCreating|ErrImagePull|ImagePullBackOff)$/);
    const bad: [LogsInit, string][] = [
      [{ sinceSeconds: -5n }, "since_seconds: must be greater than 0, got -5"],
      [{ sinceSeconds: 0n }, "since_seconds: must be greater than 0, got 0"],
      [{ sinceTime: "yesterday" }, 'since_time: must be an RFC 3339 time such as 2024-05-01T10:00:00Z, got "yesterday"'],
      [{ sinceTime: "2024-02-30T10:00:00Z" }, 'since_time: must be an RFC 3339 time such as 2024-05-01T10:00:00Z, got "2024-02-30T10:00:00Z"'],
      [{ sinceTime: "2024-05-01T10:00:00Z", sinceSeconds: 60n }, "since_time: at most one of since_seconds and since_time may be set"],
      [{ tailLines: -1n }, "tail_lines: must be >= 0"],
      [{ limitBytes: 0n }, "limit_bytes: must be greater than 0, got 0"],
    ];
    for (const [req, message] of bad) {
      err = await logError(h, { pod: "two", container: "a", ...req });
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toBe(message);
    }
  });

  it("shows lines since a time or a number of seconds ago, with their times, and the last N of them", async () => {
    h = await startHarness();
    const created = await h.createPod("times", { restartPolicy: "Never" });
    await h.waitForPod("times", "Running", (p) => p.status?.phase === "Running");
    const [c] = await h.containersOf(created);
    const now = Date.now();
    const at = (secondsAgo: number) => new Date(now - secondsAgo * 1000).toISOString();
    await writeLog(c, Buffer.concat([
      records("an hour ago\n", at(3600)),
      records("ten minutes ago\n", at(600)),
      records("a minute ago\n", at(60), "stderr"),
      records("just now\n", at(1)),
    ]));
    expect(await readLogs(h, { pod: "times", sinceSeconds: 300n })).toBe("a minute ago\njust now\n");
    expect(await readLogs(h, { pod: "times", sinceTime: at(600) })).toBe("ten minutes ago\na minute ago\njust now\n"); // at or after
    expect(await readLogs(h, { pod: "times", sinceSeconds: 3n })).toBe("just now\n");
    expect(await readLogs(h, { pod: "times", sinceTime: new Date(now + 60_000).toISOString() })).toBe("");
    // The last 3 lines, of those the ones in the last 5 minutes; and the other way round.
    expect(await readLogs(h, { pod: "times", tailLines: 3n, sinceSeconds: 300n })).toBe("a minute ago\njust now\n");
    expect(await readLogs(h, { pod: "times", tailLines: 1n, sinceSeconds: 7200n })).toBe("just now\n");
    expect(await readLogs(h, { pod: "times", timestamps: true, tailLines: 2n })).toBe(`${at(60)} a minute ago\n${at(1)} just now\n`);
    // Followed with since: old lines stay out, new ones come; then the container ends.
    let got = "";
    const done = (async () => {
      for await (const chunk of logsClient(h!).logs({ namespace: "default", pod: "times", follow: true, sinceSeconds: 120n, timestamps: true })) got += Buffer.from(chunk.data).toString();
    })();
    await waitFor("recent lines", () => got === `${at(60)} a minute ago\n${at(1)} just now\n`);
    const later = new Date().toISOString();
    await appendFile(c.logPath, records("later\n", later));
    h.runtime.exit(c.id, 0);
    await done;
    expect(got).toBe(`${at(60)} a minute ago\n${at(1)} just now\n${later} later\n`);
  });
});

describe("AgentService.Logs limit_bytes", () => {
  it("stops after N bytes of what it would send, timestamps included, even when following", async () => {
    h = await startHarness();
    const created = await h.createPod("chatty", { restartPolicy: "Never" });
    await h.waitForPod("chatty", "Running", (p) => p.status?.phase === "Running");
    const [c] = await h.containersOf(created);
    const time = new Date().toISOString();
    await writeLog(c, records("alpha\nbeta\ngamma\n", time));
    expect(await readLogs(h, { pod: "chatty", limitBytes: 8n })).toBe("alpha\nbe");
    expect(await readLogs(h, { pod: "chatty", limitBytes: 1000n })).toBe("alpha\nbeta\ngamma\n");
    expect(await readLogs(h, { pod: "chatty", tailLines: 2n, limitBytes: 5n })).toBe("beta\n");
    expect(await readLogs(h, { pod: "chatty", timestamps: true, limitBytes: BigInt(time.length + 3) })).toBe(`${time} al`);
    // The container still runs: without the limit this would wait for more.
    expect(await readLogs(h, { pod: "chatty", follow: true, limitBytes: 11n })).toBe("alpha\nbeta\n");
  });
});

describe("LogRenderer", () => {
  const t = (s: number) => `2024-05-01T10:00:${String(s).padStart(2, "0")}.5Z`;
  const rec = (s: number, stream: LogStream, full: boolean, content: string) => formatLogRecord(t(s), stream, full, content);
  const render = (file: Buffer, opts: ConstructorParameters<typeof LogRenderer>[0] = {}, chunk = file.length) => {
    const r = new LogRenderer(opts);
    const out: Buffer[] = [];
    for (let i = 0; i < file.length; i += chunk) out.push(r.push(file.subarray(i, i + chunk)));
    out.push(r.end());
    return Buffer.concat(out).toString();
  };
  // stdout "hello world\n" in three pieces, with a stderr line in between; then stdout "bye" unfinished.
  const file = Buffer.concat([
    rec(1, "stdout", false, "hel"),
    rec(2, "stderr", true, "warning"),
    rec(3, "stdout", false, "lo "),
    rec(4, "stdout", true, "world"),
    rec(5, "stdout", true, ""),
    rec(6, "stdout", false, "bye"),
  ]);

  it("joins partial records, interleaves the streams as written, keeps empty lines and an unfinished end", () => {
    expect(render(file)).toBe("helwarning\nlo world\n\nbye");
    // The same whatever the read size (records cut across reads).
    expect(render(file, {}, 7)).toBe("helwarning\nlo world\n\nbye");
  });

  it("puts a line's first time in front of it, once", () => {
    expect(render(file, { timestamps: true })).toBe(`${t(1)} hel${t(2)} warning\nlo world\n${t(5)} \n${t(6)} bye`);
  });

  it("filters whole lines by their first record's time", () => {
    const ns = (s: number) => BigInt(Date.parse(t(s))) * 1_000_000n;
    expect(render(file, { sinceNs: ns(2) })).toBe("warning\n\nbye"); // "hello world" began at 1
    expect(render(file, { sinceNs: ns(2) + 1n })).toBe("\nbye");
    expect(render(file, { sinceNs: ns(7) })).toBe("");
  });

  it("shows lines not in the format as they are, and leaves them out of a time filter", () => {
    const mixed = Buffer.concat([Buffer.from("raw line\n"), rec(1, "stdout", true, "recorded"), Buffer.from("no newline")]);
    expect(render(mixed)).toBe("raw line\nrecorded\nno newline\n");
    expect(render(mixed, { sinceNs: 0n })).toBe("recorded\n");
    expect(render(mixed, { timestamps: true })).toBe(`raw line\n${t(1)} recorded\nno newline\n`);
  });
});

describe("sinceOf", () => {
  it("turns since_seconds and since_time into nanoseconds", () => {
    expect(sinceOf({ sinceSeconds: 60n, sinceTime: "" }, 1_000_000)).toBe(940_000n * 1_000_000n);
    expect(sinceOf({ sinceTime: "2024-05-01T12:00:00.000000001+02:00" })).toBe(BigInt(Date.parse("2024-05-01T10:00:00Z")) * 1_000_000n + 1n);
    expect(sinceOf({ sinceTime: "" })).toBeUndefined();
  });
});

describe("tailOffset", () => {
  it("finds where the last N lines start: F records end lines, P records continue them", async () => {
    const path = join(tmpdir(), `skiff-tail-${process.pid}.log`);
    const T = "2024-05-01T10:00:00Z";
    const f = (text: string, stream: LogStream = "stdout") => formatLogRecord(T, stream, true, text).toString();
    const p = (text: string, stream: LogStream = "stdout") => formatLogRecord(T, stream, false, text).toString();
    const cases: [string[], number, number][] = [
      // [records, N, index of the first record of the tail]
      [[f("a"), f("b"), f("c")], 1, 2],
      [[f("a"), f("b"), f("c")], 2, 1],
      [[f("a"), f("b"), f("c")], 5, 0],
      [[f("a"), f("b"), p("c")], 1, 2], // an unfinished last line is a line
      [[f("a"), f("b"), p("c")], 2, 1],
      [[f("a"), p("b1"), p("b2"), f("b3"), f("c")], 2, 1], // b1 b2 b3 are one line
      [[f("a"), p("b1"), f("err", "stderr"), f("b2")], 2, 1], // stdout b1 b2 and stderr err
      [["raw\n", "lines\n"], 1, 1], // not in the format: a line each
      [[], 3, 0],
    ];
    for (const [recs, n, first] of cases) {
      await writeFile(path, recs.join(""));
      const fh = await open(path, "r");
      const at = await tailOffset(fh, n);
      await fh.close();
      expect(at, `${JSON.stringify(recs)} tail ${n}`).toBe(recs.slice(0, first).join("").length);
    }
    // Longer than one read chunk, with records across chunk boundaries.
    const big = Array.from({ length: 20_000 }, (_, i) => f(`line ${i}`)).join("");
    await writeFile(path, big);
    const fh = await open(path, "r");
    expect(big.slice(await tailOffset(fh, 3))).toBe(f("line 19997") + f("line 19998") + f("line 19999"));
    for (const n of [1000, 1234, 5000]) expect(big.slice(await tailOffset(fh, n)).startsWith(f(`line ${20_000 - n}`))).toBe(true);
    await fh.close();
    await rm(path, { force: true });
  });
});
