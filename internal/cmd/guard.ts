// A daemon that cannot start says why in one line and exits 1: no stack traces for a user's mistake.
export function guarded<A>(run: (ctx: A) => Promise<void>): (ctx: A) => Promise<void> {
  return async (ctx) => {
    try {
      await run(ctx);
    } catch (err) {
      console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    }
  };
}
