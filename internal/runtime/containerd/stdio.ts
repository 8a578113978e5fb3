// Where a task's stdout and stderr go. containerd 1.6's `file://` stdio is lossy: the shim copies
// both streams into one file, and when the stdout copy ends first it closes the file under the
// stderr copy, so the last stderr lines of an exiting process (a crash message!) can be lost.
// So we use `binary://`: the shim starts a logger with the stdout pipe on fd 3, stderr on fd 4 and
// a "ready" pipe on fd 5 (closed when ready), and on process delete SIGTERMs it and waits for it.
//
// The logger is /bin/sh running two `cat`s that append each stream to its file. It ignores
// SIGTERM and waits for both cats, which end when the process's pipes close: so once
// Tasks/Delete or Tasks/DeleteProcess has returned, every byte is in the files. It is owned by
// the shim, so it keeps logging while the agent restarts. The shim passes query parameters as
// arguments (`?-c=<script>` → `sh -c <script>`).

const SHELL = "/bin/sh";
const CAT = "/bin/cat";

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** A stdio URI that appends stdout to `stdoutPath` and stderr to `stderrPath` (may be the same file). */
export function loggerUri(stdoutPath: string, stderrPath: string = stdoutPath): string {
  const script = [
    "trap '' TERM",
    `${CAT} <&3 >>${shellQuote(stdoutPath)} 3<&- 4<&- 5>&- &`,
    `${CAT} <&4 >>${shellQuote(stderrPath)} 3<&- 4<&- 5>&- &`,
    "exec 3<&- 4<&- 5>&-",
    "wait",
  ].join("\n");
  return `binary://${SHELL}?-c=${encodeURIComponent(script)}`;
}
