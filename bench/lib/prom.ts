// Reads histogram sums and counts from a Prometheus text endpoint (the apiserver's /metrics), so a
// benchmark can split a client-observed latency into server-side parts: a phase's mean is
// Δsum/Δcount between two scrapes.
import { get as httpGet } from "node:http";
import { loadedTestPki } from "../../internal/pki/testing.ts";
import { getTls } from "../../test/harness/pki.ts";

export type Scrape = Map<string, number>;

/** A GET of a benchmark endpoint: https ones (the apiserver) as the run's admin, http ones (etcd's metrics port) plainly. */
export async function getUrl(url: string): Promise<{ status: number; body: string }> {
  if (url.startsWith("https:")) return getTls(url, loadedTestPki().adminNodeOptions);
  return getPlain(url);
}

/** A plain-http GET on a connection of its own, closed after: a scrape must not hold a file
 * descriptor open in the process it measures (the soak counts them). */
function getPlain(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: no answer in 5 s`)));
    req.on("error", reject);
  });
}

export async function scrape(url: string): Promise<Scrape> {
  const res = await getUrl(url);
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}: ${res.body.trim()}`);
  const text = res.body;
  const out: Scrape = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}

/** Sum of every series of `name` (a _sum or _count) whose labels include all of `labels`. */
function total(s: Scrape, name: string, labels: Record<string, RegExp>): number {
  let sum = 0;
  for (const [series, value] of s) {
    const brace = series.indexOf("{");
    if ((brace < 0 ? series : series.slice(0, brace)) !== name) continue;
    const body = brace < 0 ? "" : series.slice(brace + 1, -1);
    const have = new Map([...body.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, re]) => re.test(have.get(k) ?? ""))) sum += value;
  }
  return sum;
}

/** How much a counter (summed over the series matching `labels`) grew between two scrapes. */
export function counterDelta(before: Scrape, after: Scrape, name: string, labels: Record<string, RegExp> = {}): number {
  return total(after, name, labels) - total(before, name, labels);
}

/** How much a histogram (its _sum and _count, over the series matching `labels`) grew between two scrapes. */
export function histogramDelta(before: Scrape, after: Scrape, name: string, labels: Record<string, RegExp>): { sum: number; count: number } {
  return {
    sum: total(after, `${name}_sum`, labels) - total(before, `${name}_sum`, labels),
    count: total(after, `${name}_count`, labels) - total(before, `${name}_count`, labels),
  };
}
