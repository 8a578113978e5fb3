// How much of a process's RSS is memory glibc's malloc holds free: the process is paused under
// gdb for a call of malloc_trim(0), which hands free pages back to the kernel, and its RSS is read
// before and after. A Node process allocates ArrayBuffer backing stores, TLS and HTTP/2 buffers
// with malloc; freed, they stay in the process (glibc returns only a free top of its main heap
// above a threshold), so RSS can climb with no live object more. The soak calls this once, at
// the end, after its own RSS reading: the trim changes what it measures.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

/** RSS before and after malloc_trim(0) in `pid`, or why it could not be measured. */
export function mallocTrim(pid: number): { beforeKiB: number; afterKiB: number } | { error: string } {
  const beforeKiB = rssKiB(pid);
  try {
    const out = execFileSync("gdb", ["-p", String(pid), "-batch", "-ex", "call (int) malloc_trim(0)"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 120_000,
    });
    if (!/\$1 = [01]/.test(out)) return { error: `gdb did not call malloc_trim: ${out.trim().split("\n").at(-1)}` };
  } catch (err) {
    return { error: `gdb failed (is it installed?): ${String(err).split("\n")[0]}` };
  }
  return { beforeKiB, afterKiB: rssKiB(pid) };
}
