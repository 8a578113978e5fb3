// For the CLI's tests: an in-process apiserver on the memory store, typed clients for the test
// to play the controllers and agents with, and skiffctl run in-process against it; or the real
// binary (cmd/skiffctl.ts) as a child process, for the integration tests in test/cli.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ApiObject } from "../api/registry.ts";
import { startApiServer, type ApiServer } from "../apiserver/server.ts";
import { createResourceClient, type ResourceClient } from "../client/resource-client.ts";
import { createApiTransport } from "../client/transport.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { runSkiffctl } from "./main.ts";
import { adminCredentials, loadedTestPki, testPki } from "../pki/testing.ts";
import { saveConfig } from "./config.ts";

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** A skiffctl still running (rollout status, drain): its output so far, and its end. */
export interface RunningCli {
  readonly out: string;
  readonly err: string;
  /** Resolves once stdout matches. */
  waitFor(re: RegExp, ms?: number): Promise<void>;
  done: Promise<CliRun>;
  /** Ctrl-C. */
  interrupt(): void;
}

export interface CliTestApi {
  server: ApiServer;
  client<T extends ApiObject = any>(kind: string): ResourceClient<T>;
  /** `env` adds variables (e.g. EDITOR) to the run's environment. */
  run(args: string[], env?: Record<string, string>): Promise<CliRun>;
  start(args: string[], env?: Record<string, string>): RunningCli;
  close(): Promise<void>;
}

/** Collects a run's output and lets a test wait for a line to appear. */
function outputTracker() {
  let out = "";
  let err = "";
  const waiters: { re: RegExp; ok: () => void }[] = [];
  return {
    out: (t: string) => {
      out += t;
      for (const w of [...waiters]) if (w.re.test(out)) w.ok();
    },
    err: (t: string) => void (err += t),
    result: (code: number) => ({ code, out, err }),
    view(done: Promise<CliRun>, interrupt: () => void): RunningCli {
      return {
        get out() {
          return out;
        },
        get err() {
          return err;
        },
        waitFor(re, ms = 20_000) {
          if (re.test(out)) return Promise.resolve();
          return new Promise((ok, fail) => {
            const t = setTimeout(() => fail(new Error(`timed out waiting for ${re}; stdout:\n${out}\nstderr:\n${err}`)), ms);
            waiters.push({ re, ok: () => (clearTimeout(t), ok()) });
          });
        },
        done,
        interrupt,
      };
    },
  };
}

export async function startCliTestApi(): Promise<CliTestApi> {
  const server = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0, heartbeatMs: 200 });
  const transport = createApiTransport(server.url, adminCredentials());
  const dir = mkdtempSync(join(tmpdir(), "skiffctl-unit-"));
  const env = { SKIFF_SERVER: server.url, SKIFF_CONFIG: join(dir, "config.yaml") };
  await saveConfig(env.SKIFF_CONFIG, adminConfig());
  const start = (args: string[], extra: Record<string, string> = {}): RunningCli => {
    const t = outputTracker();
    const interrupt = new AbortController();
    const done = runSkiffctl(args, { out: t.out, err: t.err, readStdin: async () => "", env: { ...env, ...extra }, signal: interrupt.signal }).then(t.result);
    return t.view(done, () => interrupt.abort());
  };
  return {
    server,
    client: (kind) => createResourceClient(transport, kind),
    run: (args, extra) => start(args, extra).done,
    start,
    async close() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const CLI = fileURLToPath(new URL("../../cmd/skiffctl.ts", import.meta.url));

/** A config with the test PKI's admin as the current context (the server comes from $SKIFF_SERVER). */
export function adminConfig() {
  const pki = loadedTestPki();
  return {
    clusters: [{ name: "test", cluster: { "certificate-authority": pki.files("ca").cert } }],
    users: [{ name: "admin", user: { "client-certificate": pki.files("admin").cert, "client-key": pki.files("admin").key } }],
    contexts: [{ name: "admin@test", context: { cluster: "test", user: "admin" } }],
    "current-context": "admin@test",
  };
}

let adminFile: string | undefined;

/** A config file with adminConfig() in it, written once per process (after testPki()). */
export function adminConfigFile(): string {
  if (!adminFile) {
    adminFile = join(mkdtempSync(join(tmpdir(), "skiffctl-admin-")), "config.yaml");
    writeFileSync(adminFile, JSON.stringify(adminConfig()), { mode: 0o600 });
    const made = adminFile;
    process.once("exit", () => rmSync(dirname(made), { recursive: true, force: true }));
  }
  return adminFile;
}

/**
 * Runs the real skiffctl (on the Node running the test) against `server` as the test PKI's admin
 * (after testPki()), with `extraEnv` added (e.g. EDITOR); interrupt() is Ctrl-C. Nothing of the
 * user's config is read.
 */
export function spawnSkiffctl(server: string, args: string[], extraEnv: Record<string, string> = {}): RunningCli {
  const env = { ...process.env, ...extraEnv, SKIFF_SERVER: server, SKIFF_CONFIG: adminConfigFile(), NO_COLOR: "1" };
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const t = outputTracker();
  child.stdout.setEncoding("utf8").on("data", t.out);
  child.stderr.setEncoding("utf8").on("data", t.err);
  const done = new Promise<CliRun>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve(t.result(code ?? -1)));
  });
  return t.view(done, () => child.kill("SIGINT"));
}
