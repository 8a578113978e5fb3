// `skiffctl logs` end to end: the real CLI (`node cmd/skiffctl.ts`, a child process) against a
// real apiserver on etcd and a real node agent on containerd + runc + the CNI bridge, with pods
// from a busybox-static image. The CLI asks the apiserver (PodService.Log), which finds the agent:
// the pod's node → the Node's InternalIP and agent port, over mutual TLS. The node comes from
// test/agent/cluster.ts: names and
// the pod CIDR are unique to this run; everything is removed afterwards, a crashed run's leftovers
// first.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { PodService } from "../../gen/skiff/v1alpha1/pod_service_pb.js";
import { RoleBindingSchema } from "../../gen/skiff/v1alpha1/rbac_pb.js";
import { createApiTransport } from "../../internal/client/transport.ts";
import { createAgent } from "../../internal/agent/agent.ts";
import { cstatus, testPod, waitFor } from "../../internal/agent/testing.ts";
import { startCluster, type Cluster } from "../agent/cluster.ts";
import { adminConfigFile } from "../../internal/cli/testing.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CLI = join(ROOT, "cmd", "skiffctl.ts");

let c: Cluster;

beforeAll(async () => {
  c = await startCluster({ agent: { resyncMs: 300 } });
}, 180_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

const env = () => ({ ...process.env, SKIFF_SERVER: c.cp.server.url, SKIFF_CONFIG: adminConfigFile(), NO_COLOR: "1" });

/** Runs skiffctl to completion. */
function skiffctl(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: env(), stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("error", fail);
    child.on("close", (code) => done({ code, out, err }));
  });
}

/** A long-running skiffctl (logs -f): its output so far, and a Ctrl-C. */
function startSkiffctl(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: env(), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const closed = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  return {
    output: () => ({ out, err }),
    exitCode: () => child.exitCode,
    async interrupt(): Promise<number | null> {
      if (child.exitCode === null) child.kill("SIGINT");
      return closed;
    },
  };
}

function onNode(podName: string, command: string, extra: Record<string, unknown> = {}): Pod {
  return testPod(podName, {
    nodeName: c.nodeName,
    ...extra,
    containers: [{ name: "app", image: c.image.ref, imagePullPolicy: "Never", command: ["sh", "-c", command], ...((extra.container as object) ?? {}) }],
  } as any);
}

// Prints five lines, then one more once /tmp/go exists (the test creates it with an exec).
const PRINTER = 'for i in 1 2 3 4 5; do echo "line $i"; done; while ! test -e /tmp/go; do sleep 1; done; echo later; exec sleep 3600';
const FIVE = "line 1\nline 2\nline 3\nline 4\nline 5\n";

describe("skiffctl logs on a real node", () => {
  it("prints a container's output, and its last lines with --tail", async () => {
    await c.pods.create(onNode("printer", PRINTER));
    await c.waitForPod("printer", "Running", (p) => p.status?.phase === "Running");
    const all = await waitFor("five lines", async () => {
      const r = await skiffctl(["logs", "printer"]);
      return r.out === FIVE ? r : undefined;
    }, 15_000);
    expect(all).toEqual({ code: 0, out: FIVE, err: "" });
    expect(await skiffctl(["logs", "pod/printer", "--tail", "2", "-n", "default"])).toEqual({ code: 0, out: "line 4\nline 5\n", err: "" });
    expect((await skiffctl(["logs", "printer", "-c", "app", "--tail=0"])).out).toBe("");
  });

  it("PodService.Log is authorized as get on pods/log: a user bound to view reads it, one with no binding gets PERMISSION_DENIED", async () => {
    const readAs = async (user: string) => {
      const transport = createApiTransport(c.cp.server.url, c.cp.pki.credentials(await c.cp.pki.issueClient(user)));
      let out = "";
      for await (const chunk of createClient(PodService, transport).log({ namespace: "default", name: "printer", tailLines: 1n })) out += Buffer.from(chunk.data).toString();
      return out;
    };
    await c.cp.client("RoleBinding").create(
      create(RoleBindingSchema, { metadata: { name: "log-reader-view", namespace: "default" }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "view" }, subjects: [{ kind: "User", name: "log-reader" }] }),
    );
    expect(await waitFor("the view binding to take effect", () => readAs("log-reader").catch(() => undefined), 15_000)).toBe("line 5\n");
    const denied = await readAs("log-stranger").then(
      () => undefined,
      (err) => ConnectError.from(err),
    );
    expect([denied?.code, denied?.rawMessage]).toEqual([Code.PermissionDenied, expect.stringContaining('User "log-stranger" cannot get resource "pods/log" in API group "" in the namespace "default"')]);
  });

  it("-f prints a line written later, until Ctrl-C (exit 0)", async () => {
    const follow = startSkiffctl(["logs", "printer", "-f"]);
    await waitFor("the first lines", () => follow.output().out === FIVE, 15_000);
    const p = await c.pods.get("default", "printer");
    const id = cstatus(p)!.containerId.replace(/^containerd:\/\//, "");
    expect((await c.runtime.exec(id, ["touch", "/tmp/go"], 5000)).exitCode).toBe(0);
    await waitFor("the later line", () => follow.output().out === `${FIVE}later\n`, 15_000);
    expect(follow.exitCode()).toBeNull(); // still following
    expect(await follow.interrupt()).toBe(0);
    expect(follow.output().err).toBe("");
  });

  it("-p shows the previous instance's output after a restart", async () => {
    // Counts its runs in an emptyDir (it outlives the container); the first run fails.
    const script = 'n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo "instance $n"; if [ $n -lt 2 ]; then exit 1; fi; exec sleep 3600';
    await c.pods.create(onNode("restarter", script, {
      volumes: [{ name: "data", emptyDir: {} }],
      container: { volumeMounts: [{ name: "data", mountPath: "/data" }] },
    }));
    await c.waitForPod("restarter", "restarted and running", (p) => cstatus(p)?.restartCount === 1 && !!cstatus(p)?.state?.running);
    expect(await skiffctl(["logs", "restarter", "-p"])).toEqual({ code: 0, out: "instance 1\n", err: "" });
    expect(await waitFor("current output", async () => {
      const r = await skiffctl(["logs", "restarter"]);
      return r.out === "instance 2\n" ? r : undefined;
    }, 10_000)).toMatchObject({ code: 0 });
  });

  it("--since, --since-time and --timestamps: lines by the time the node's logger wrote them, across an agent restart", async () => {
    // Prints at moments the test picks (exec touch): one line, then two (stdout, stderr), then one more.
    const script = "echo early; until test -e /tmp/go; do sleep 0.2; done; echo late; echo late-err >&2; " +
      "until test -e /tmp/go2; do sleep 0.2; done; echo while-down; exec sleep 3600";
    const started = Date.now();
    await c.pods.create(onNode("clock", script));
    await waitFor("the first line", async () => (await skiffctl(["logs", "clock"])).out === "early\n", 15_000);
    const afterEarly = Date.now();
    const exec = async (file: string) => {
      const id = cstatus(await c.pods.get("default", "clock"))!.containerId.replace(/^containerd:\/\//, "");
      expect((await c.runtime.exec(id, ["touch", file], 5000)).exitCode).toBe(0);
    };
    await new Promise((r) => setTimeout(r, 8000)); // the lines that follow are >= 8 s newer than "early"
    const beforeLate = Date.now();
    await exec("/tmp/go");
    await waitFor("the later lines", async () => (await skiffctl(["logs", "clock"])).out === "early\nlate\nlate-err\n", 15_000);
    const afterLate = Date.now();

    // --timestamps: each line's time, in order, when it was written (not when it is read).
    const stamped = await skiffctl(["logs", "clock", "--timestamps"]);
    expect(stamped.code).toBe(0);
    const lines = stamped.out.split("\n").slice(0, -1).map((l) => /^(\S+) (.*)$/.exec(l)!);
    expect(lines.map((m) => m[2])).toEqual(["early", "late", "late-err"]);
    const times = lines.map((m) => {
      expect(m[1]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/);
      return Date.parse(m[1]);
    });
    expect(times[0]).toBeGreaterThanOrEqual(started - 1000);
    expect(times[0]).toBeLessThanOrEqual(afterEarly);
    for (const t of times.slice(1)) {
      expect(t).toBeGreaterThanOrEqual(beforeLate - 1); // ms truncation of the ns time
      expect(t).toBeLessThanOrEqual(afterLate);
    }

    // --since-time: at or after that moment. --since: the last N seconds, N chosen so that the
    // window starts well after "early" (8 s before "late") and before "late" even when the CLI
    // takes up to 5 s to start and reach the agent on a loaded machine.
    expect(await skiffctl(["logs", "clock", "--since-time", new Date(beforeLate).toISOString()])).toEqual({ code: 0, out: "late\nlate-err\n", err: "" });
    expect((await skiffctl(["logs", "clock", "--since-time", lines[0][1]])).out).toBe("early\nlate\nlate-err\n");
    const n = Math.ceil((Date.now() - beforeLate) / 1000) + 5;
    expect(await skiffctl(["logs", "clock", "--since", `${n}s`])).toEqual({ code: 0, out: "late\nlate-err\n", err: "" });
    expect((await skiffctl(["logs", "clock", "--since", "1h", "--tail", "1", "--timestamps"])).out).toBe(`${lines[2][0]}\n`);

    // The agent stops; the container writes; the logger (the shim's child) stamps it then.
    await c.agent.stop();
    const whileDown = Date.now();
    await exec("/tmp/go2");
    await new Promise((r) => setTimeout(r, 1500));
    const restarting = Date.now();
    c.agent = createAgent(c.agentOptions);
    await c.agent.start();
    const r = await waitFor("the line written while the agent was down", async () => {
      const got = await skiffctl(["logs", "clock", "--since-time", new Date(whileDown).toISOString(), "--timestamps"]);
      return got.out.endsWith("while-down\n") ? got : undefined;
    }, 15_000);
    const [, when, text] = /^(\S+) (.*)\n$/.exec(r.out)!;
    expect(text).toBe("while-down");
    expect(Date.parse(when)).toBeGreaterThanOrEqual(whileDown - 1);
    expect(Date.parse(when)).toBeLessThan(restarting);
  });

  it("fails with one clear line and exit code 1", async () => {
    await c.pods.create(testPod("unscheduled", { nodeName: "" }));
    await c.pods.create(testPod("noimage", { nodeName: c.nodeName, containers: [{ name: "app", image: "skiff.test/absent:v1", imagePullPolicy: "Never" }] }));
    await c.waitForPod("noimage", "ErrImageNeverPull", (p) => cstatus(p)?.state?.waiting?.reason === "ErrImageNeverPull");
    const cases: [string[], string | RegExp][] = [
      [["logs", "ghost"], 'Error: pod "ghost" not found in namespace "default"\n'],
      [["logs", "printer", "-c", "nope"], 'Error: container "nope" is not valid for pod "printer": choose one of: [app]\n'],
      [["logs", "unscheduled"], 'Error: pod "unscheduled" is not scheduled to a node yet (phase Pending): it has no logs\n'],
      [["logs", "noimage"], 'Error: container "app" in pod "noimage" is waiting to start: ErrImageNeverPull\n'],
      [["logs", "printer", "--since", "10m", "--since-time", "2024-05-01T10:00:00Z"], "Error: at most one of `sinceTime` or `sinceSeconds` may be specified\n"],
      [["logs", "printer", "--since-time", "2024-05-01"], 'Error: --since-time must be an RFC 3339 time such as 2024-05-01T10:00:00Z, got "2024-05-01"\n'],
      [["logs", "printer", "--tial", "2"], "Error: unknown flag --tial\n"],
    ];
    for (const [args, want] of cases) {
      const r = await skiffctl(args);
      expect(r.err, args.join(" ")).toMatch(want);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.out, args.join(" ")).toBe("");
    }
  });

  it("says so when the node's agent cannot be reached", async () => {
    const port = c.agent.port();
    await c.agent.stop();
    const r = await skiffctl(["logs", "printer"]);
    expect(r.err).toMatch(new RegExp(`^Error: cannot reach the agent of node "${c.nodeName}" at https://127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`));
    expect(r.code).toBe(1);
  });
});
