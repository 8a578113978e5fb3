import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { appendFile, mkdir, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AgentService, type AgentServiceLogsRequest } from "../../gen/skiff/v1alpha1/agent_service_pb.js";
import type { ContainerInfo } from "../runtime/runtime.ts";
import { tailOffset } from "./logs.ts";
import { cstatus, startHarness, waitFor, type Harness } from "./testing.ts";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function logsClient(harness: Harness) {
  // How skiffctl reaches the agent: the Node's InternalIP and daemonEndpoints port, over HTTP/2.
  return createClient(AgentService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${harness.agent.port()}` }));
}

type LogsInit = Partial<Omit<AgentServiceLogsRequest, "$typeName" | "$unknown">>;

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

async function writeLog(c: ContainerInfo, text: string): Promise<void> {
  await mkdir(dirname(c.logPath), { recursive: true });
  await writeFile(c.logPath, text);
}

describe("AgentService.Logs", () => {
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
    await appendFile(c.logPath, "more\n");
    await waitFor("appended line", () => got === "start\nmore\n");
    await appendFile(c.logPath, "last words\n");
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
    expect(err.rawMessage).toBe('pod "nope" not found in namespace "default" on node "node-1"');
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
    err = await logError(h, { pod: "two", container: "a", timestamps: true });
    expect(err.code).toBe(Code.Unimplemented);
  });
});

describe("tailOffset", () => {
  it("finds where the last N lines start, with or without a final newline", async () => {
    const path = join(tmpdir(), `skiff-tail-${process.pid}.log`);
    const cases: [string, number, string][] = [
      ["a\nb\nc\n", 1, "c\n"],
      ["a\nb\nc\n", 2, "b\nc\n"],
      ["a\nb\nc\n", 5, "a\nb\nc\n"],
      ["a\nb\nc", 1, "c"],
      ["a\nb\nc", 2, "b\nc"],
      ["", 3, ""],
    ];
    for (const [text, n, want] of cases) {
      await writeFile(path, text);
      const fh = await open(path, "r");
      const at = await tailOffset(fh, n);
      await fh.close();
      expect(text.slice(at)).toBe(want);
    }
    // Longer than one read chunk.
    const big = Array.from({ length: 20_000 }, (_, i) => `line ${i}`).join("\n") + "\n";
    await writeFile(path, big);
    const fh = await open(path, "r");
    expect(big.slice(await tailOffset(fh, 3))).toBe("line 19997\nline 19998\nline 19999\n");
    await fh.close();
    await rm(path, { force: true });
  });
});
