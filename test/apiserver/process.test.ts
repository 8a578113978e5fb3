// `skiff apiserver` as a user runs it: a real process that serves, and on SIGTERM ends open
// watches and exits 0; and the in-memory store for trying Skiff without etcd.
import { spawn, type ChildProcess } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { configMap } from "../fixtures/objects.ts";
import { startEtcd, type EtcdServer } from "../harness/etcd.ts";
import { apiserverTlsArgs, getTls, testPki } from "../harness/pki.ts";
import { freePort } from "../harness/ports.ts";

let child: ChildProcess | undefined;
let etcd: EtcdServer | undefined;
afterEach(async () => {
  child?.kill("SIGKILL");
  await etcd?.stop();
  child = etcd = undefined;
});

async function startApiserver(args: string[]): Promise<string> {
  const port = await freePort();
  const pki = await testPki();
  child = spawn(process.execPath, ["cmd/skiff.ts", "apiserver", "--listen", `127.0.0.1:${port}`, ...apiserverTlsArgs(pki), ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, SKIFF_LOG_FORMAT: "json" },
  });
  const url = `https://127.0.0.1:${port}`;
  await expect
    .poll(async () => (await getTls(`${url}/readyz`, { ca: pki.ca.cert }).catch(() => undefined))?.status, { timeout: 20_000, interval: 100 })
    .toBe(200);
  return url;
}

describe("skiff apiserver process", () => {
  it("serves from etcd and, on SIGTERM, ends open watches and exits 0", async () => {
    etcd = await startEtcd();
    const url = await startApiserver(["--etcd-servers", etcd.endpoint]);
    const cms = createResourceClient(createApiTransport(url, (await testPki()).adminCredentials), "ConfigMap");
    await cms.create(configMap("before-term"));
    const stream = cms.watch("default")[Symbol.asyncIterator]();
    expect((await stream.next()).value?.type).toBe("ADDED");
    const exit = new Promise<number | null>((r) => child!.once("exit", (code) => r(code)));
    child!.kill("SIGTERM");
    // The stream ends (cleanly or with an error), it does not hang.
    const ended = await Promise.race([
      (async () => {
        try {
          for (;;) if ((await stream.next()).done) return "ended";
        } catch {
          return "ended";
        }
      })(),
      new Promise((r) => setTimeout(() => r("hung"), 10_000)),
    ]);
    expect(ended).toBe("ended");
    expect(await exit).toBe(0);
  }, 60_000);

  it("--store memory needs no etcd", async () => {
    const url = await startApiserver(["--store", "memory"]);
    const cms = createResourceClient(createApiTransport(url, (await testPki()).adminCredentials), "ConfigMap");
    await cms.create(configMap("in-memory"));
    expect((await cms.get("default", "in-memory")).metadata!.name).toBe("in-memory");
  }, 30_000);

  it("a bad flag is a clear error, not a stack trace", async () => {
    const p = spawn(process.execPath, ["cmd/skiff.ts", "apiserver", "--store", "sqlite", "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    const code = await new Promise<number | null>((r) => p.once("exit", (c) => r(c)));
    expect(code).toBe(1);
    expect(err).toContain('--store must be etcd or memory, got "sqlite"');
    expect(err).not.toMatch(/\n\s+at /);
  }, 30_000);
});
