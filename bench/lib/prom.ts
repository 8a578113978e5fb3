// Reads histogram sums and counts from a Prometheus text endpoint (the apiserver's /metrics), so a
// benchmark can split a client-observed latency into server-side parts: a phase's mean is
// Δsum/Δcount between two scrapes.

export type Scrape = Map<string, number>;

export async function scrape(url: string): Promise<Scrape> {
  const text = await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text();
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
