// A real Prometheus (Debian's `prometheus`) for a test: a generated scrape config (every job over
// TLS with the cluster CA and a client certificate), a free loopback port, its data in a temp dir,
// and helpers that read its HTTP API (targets, instant queries).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { LOOPBACK, freePort } from "./ports.ts";
import { startGuardedProcess, type GuardedProcess } from "./process.ts";
import { makeTempDir, removeTempDir } from "./tmp.ts";

export interface ScrapeJob {
  name: string;
  /** host:port of each target. */
  targets: string[];
  /** Plain HTTP (etcd's metrics port); default HTTPS with `tls`. */
  http?: boolean;
}

export interface PrometheusOptions {
  jobs: ScrapeJob[];
  /** The CA that signed the targets' certificates, and the client certificate to present (PEM). */
  tls: { ca: string; cert: string; key: string };
  /** Default 1 s: tests wait for samples, so they come often. */
  scrapeIntervalSeconds?: number;
}

export interface Target {
  job: string;
  instance: string;
  health: "up" | "down" | "unknown";
  lastError: string;
}

export interface PrometheusServer {
  url: string;
  /** The config file written for it. */
  configPath: string;
  targets(): Promise<Target[]>;
  /** An instant query: each series' labels and value. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: number }[]>;
  log(): string;
  stop(): Promise<void>;
}

/** The scrape config for these jobs, with TLS files under `dir` (also used to check the config with promtool). */
export function writeScrapeConfig(dir: string, opts: PrometheusOptions): string {
  mkdirSync(dir, { recursive: true });
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };
  const tls = { ca_file: file("ca.crt", opts.tls.ca), cert_file: file("client.crt", opts.tls.cert), key_file: file("client.key", opts.tls.key) };
  const interval = `${opts.scrapeIntervalSeconds ?? 1}s`;
  const config = {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    scrape_configs: opts.jobs.map((j) => ({
      job_name: j.name,
      ...(j.http ? {} : { scheme: "https", tls_config: tls }),
      static_configs: [{ targets: j.targets }],
    })),
  };
  return file("prometheus.yml", stringify(config));
}

export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusServer> {
  const dir = makeTempDir("skiff-prometheus-");
  const configPath = writeScrapeConfig(dir, opts);
  const port = await freePort();
  const url = `http://${LOOPBACK}:${port}`;
  let proc: GuardedProcess;
  try {
    proc = await startGuardedProcess({
      command: "prometheus",
      args: [`--config.file=${configPath}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=${LOOPBACK}:${port}`, "--log.level=warn"],
      name: "prometheus",
      timeoutMs: 60_000,
      ready: async () => (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) })).ok,
      cleanup: () => removeTempDir(dir),
    });
  } catch (err) {
    removeTempDir(dir);
    throw err;
  }
  async function api<T>(path: string): Promise<T> {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`prometheus ${path}: ${body.error}`);
    return body.data;
  }
  return {
    url,
    configPath,
    async targets() {
      const data = await api<{ activeTargets: { labels: Record<string, string>; health: Target["health"]; lastError: string }[] }>("/api/v1/targets?state=active");
      return data.activeTargets.map((t) => ({ job: t.labels.job, instance: t.labels.instance, health: t.health, lastError: t.lastError }));
    },
    async query(expr) {
      const data = await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
      return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    log: () => proc.log(),
    stop: () => proc.stop(),
  };
}
