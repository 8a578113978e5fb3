// `npm run bench -- logger`: the per-container log writer (internal/runtime/containerd/logger/)
// on its own, started the way containerd's shim starts it (fd 3 stdout, fd 4 stderr, fd 5
// ready), fed as fast as it reads: lines/s (by wall time and per CPU second of the logger) and
// its memory (RSS idle after start, peak under load). Next to it, for scale, the raw `sh` + `cat`
// logger that exec output still uses (no timestamps, no lines: bytes only). No containerd
// needed; everything lives in a temp dir removed at the end.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Readable, Writable } from "node:stream";
import { parseArgs } from "node:util";
import { DEFAULT_CONTAINER_LOG } from "../internal/runtime/containerd/runtime.ts";
import { containerLoggerUri, rawLoggerUri } from "../internal/runtime/containerd/stdio.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { renderTable } from "./lib/table.ts";

const options = {
  lines: { type: "string", default: "2000000" },
  length: { type: "string", default: "100" },
  stderr: { type: "string", default: "10" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- logger [options]

  --lines N     lines written in all (default 2,000,000)
  --length B    bytes per line, newline included (default 100)
  --stderr PCT  share of the lines written to stderr, interleaved (default 10)`;

const CLK_TCK = 100;

/** Kilobytes of resident memory of the process and its children (the raw logger is sh + 2 cats). */
function rssKb(pid: number, field: "VmRSS" | "VmHWM"): number {
  const own = (p: number) => {
    try {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${p}/status`, "utf8"));
      return m ? Number(m[1]) : 0;
    } catch {
      return 0;
    }
  };
  let total = own(pid);
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) total += own(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** CPU seconds the process and its reaped children have used (user + system). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
}

async function start(uri: string): Promise<{ child: ChildProcess; out: Writable; err: Writable; exited: Promise<void> }> {
  const u = new URL(uri);
  const child = spawn(u.pathname, [...u.searchParams].flat(), { stdio: ["ignore", "ignore", "inherit", "pipe", "pipe", "pipe"] });
  onCleanup(() => child.exitCode === null && child.kill("SIGKILL"));
  const fds = child.stdio as unknown as (Readable & Writable)[];
  await new Promise<void>((resolve) => fds[5].on("end", resolve).resume());
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  return { child, out: fds[3], err: fds[4], exited };
}

async function write(w: Writable, buf: Buffer): Promise<void> {
  if (!w.write(buf)) await new Promise((r) => w.once("drain", r));
}

interface Row {
  name: string;
  seconds: number;
  cpu: number;
  idleKb: number;
  peakKb: number;
  bytes: number;
}

/** A process that writes `lines` lines to the logger's stdout pipe with one write(2) each. */
async function measurePerLine(name: string, uri: string, lines: number, length: number, file: string): Promise<Row> {
  const l = await start(uri);
  const pid = l.child.pid!;
  const t0 = performance.now();
  const producer = spawn("/usr/bin/perl", ["-e", `my $l = ("w" x ${length - 1}) . "\n"; syswrite(STDOUT, $l) for 1..${lines};`], {
    stdio: ["ignore", l.out as unknown as Readable, "inherit"],
  });
  onCleanup(() => producer.exitCode === null && producer.kill("SIGKILL"));
  let peakKb = 0;
  const sampler = setInterval(() => (peakKb = Math.max(peakKb, rssKb(pid, "VmRSS"))), 100);
  await new Promise((r) => producer.on("exit", r));
  clearInterval(sampler);
  const cpu = cpuSeconds(pid);
  l.out.end();
  l.err.end();
  await l.exited;
  return { name, seconds: (performance.now() - t0) / 1000, cpu, idleKb: 0, peakKb, bytes: statSync(file).size };
}

async function measure(name: string, uri: string, lines: number, length: number, stderrPct: number, file: string): Promise<Row> {
  const l = await start(uri);
  const pid = l.child.pid!;
  await new Promise((r) => setTimeout(r, 200));
  const idleKb = rssKb(pid, "VmRSS");
  // Batches of 1,000 lines; every (100/stderrPct)-th batch goes to stderr.
  const batch = 1000;
  const line = (c: string) => `${c.repeat(length - 1)}\n`;
  const outBuf = Buffer.from(line("o").repeat(batch));
  const errBuf = Buffer.from(line("e").repeat(batch));
  const every = stderrPct > 0 ? Math.max(1, Math.round(100 / stderrPct)) : 0;
  let peakKb = 0;
  const t0 = performance.now();
  for (let i = 0; i * batch < lines; i++) {
    if (every && i % every === 0) await write(l.err, errBuf);
    else await write(l.out, outBuf);
    if (i % 200 === 0) peakKb = Math.max(peakKb, rssKb(pid, "VmRSS"));
  }
  // Read before the end: once reaped, /proc has nothing. What is left then is one pipe's worth.
  const cpu = cpuSeconds(pid);
  l.out.end();
  l.err.end();
  await l.exited;
  const seconds = (performance.now() - t0) / 1000;
  return { name, seconds, cpu, idleKb, peakKb, bytes: statSync(file).size };
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options, strict: true });
  if (values.help) {
    console.log(help);
    return;
  }
  const lines = Number(values.lines);
  const length = Number(values.length);
  const stderrPct = Number(values.stderr);
  const dir = mkdtempSync(join(tmpdir(), "skiff-bench-logger-"));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));

  const rows: Row[] = [];
  const cri = join(dir, "cri.log");
  rows.push(await measure("CRI logger (perl)", containerLoggerUri(cri), lines, length, stderrPct, cri));
  // What every container gets by default: the same, rotating at 10 MiB, 5 files kept.
  mkdirSync(join(dir, "rotated"));
  const rotated = join(dir, "rotated", "0.log");
  rows.push(await measure("CRI logger (perl), rotated 10Mi × 5", containerLoggerUri(rotated, DEFAULT_CONTAINER_LOG), lines, length, stderrPct, rotated));
  const [o, e] = [join(dir, "out"), join(dir, "err")];
  rows.push(await measure("raw logger (sh + 2 cat)", rawLoggerUri(o, e), lines, length, stderrPct, o));

  const perLine = Math.min(lines, 500_000);
  const one = join(dir, "one.log");
  const slow = await measurePerLine("CRI logger (perl)", containerLoggerUri(one), perLine, length, one);

  console.log(`${lines.toLocaleString("en")} lines of ${length} bytes, ${stderrPct}% on stderr, written in 100 kB writes as fast as the logger reads\n`);
  console.log(table(rows, lines, length));
  console.log(`\n${perLine.toLocaleString("en")} lines of ${length} bytes, one write(2) each (a program that flushes every line; reads coalesce when the logger falls behind)\n`);
  console.log(table([slow], perLine, length));
  const criBytes = rows[0].bytes;
  console.log(`\n  CRI log file: ${(criBytes / 1e6).toFixed(0)} MB for ${((lines * length) / 1e6).toFixed(0)} MB of output (record headers: +${(((criBytes - lines * length) / lines) | 0)} bytes a line)`);
}

function table(rows: Row[], lines: number, length: number): string {
  return renderTable(
      ["logger", "wall s", "lines/s (wall)", "lines per CPU s", "MB/s in", "RSS idle", "RSS peak"],
      rows.map((r) => [
        r.name,
        r.seconds.toFixed(2),
        Math.round(lines / r.seconds).toLocaleString("en"),
        r.cpu > 0 ? Math.round(lines / r.cpu).toLocaleString("en") : "-",
        ((lines * length) / r.seconds / 1e6).toFixed(0),
        r.idleKb ? `${(r.idleKb / 1024).toFixed(1)} MB` : "-",
        `${(r.peakKb / 1024).toFixed(1)} MB`,
      ]),
      "  ",
  );
}
