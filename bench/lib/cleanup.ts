// Teardown for benchmark runs: whatever a bench starts (etcd, an apiserver process, clients)
// registers how to stop it here, and it is stopped in reverse order on a normal end, on an
// error, and on Ctrl-C / SIGTERM. Child processes are also tied to this process's lifetime by
// their own means (see child.ts), so even a SIGKILL of the bench leaves nothing behind.

type Cleanup = () => unknown;

const cleanups: Cleanup[] = [];
let running: Promise<void> | undefined;
let signalled: string | undefined;

/** The signal that interrupted the run, if one did (errors after it are teardown noise). */
export function interruptedBy(): string | undefined {
  return signalled;
}

/** Registers a teardown step; the latest registered runs first. */
export function onCleanup(fn: Cleanup): void {
  cleanups.push(fn);
}

/** Runs every teardown step once (later calls wait for the first); a failing step is reported, not fatal. */
export function cleanup(): Promise<void> {
  running ??= (async () => {
    while (cleanups.length > 0) {
      const fn = cleanups.pop()!;
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`cleanup failed: ${String(err)}\n`);
      }
    }
  })();
  return running;
}

/** Ctrl-C and SIGTERM tear everything down, then exit with 128+signal like a shell would. */
export function cleanupOnSignals(): void {
  const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const [signal, code] of Object.entries(codes)) {
    process.once(signal, () => {
      signalled = signal;
      process.stderr.write(`\n${signal}: stopping the benchmark and cleaning up…\n`);
      // A second signal, or a teardown that hangs, ends the process at once.
      process.once(signal, () => process.exit(code));
      const force = setTimeout(() => process.exit(code), 15_000);
      force.unref();
      void cleanup().finally(() => process.exit(code));
    });
  }
}
