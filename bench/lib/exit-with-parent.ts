// Preloaded (`node --import`) into every process a benchmark starts. The bench holds the write end
// of our stdin pipe; when it closes (the bench finished, crashed, or was SIGKILLed) we SIGTERM
// ourselves, so a daemon shuts down the way it normally does (and writes its --cpu-prof), and
// we exit hard if that shutdown hangs.

let leaving = false;
function parentGone(): void {
  if (leaving) return;
  leaving = true;
  setTimeout(() => process.exit(1), 10_000).unref();
  process.kill(process.pid, "SIGTERM");
}

process.stdin.on("data", () => {});
process.stdin.on("end", parentGone);
process.stdin.on("close", parentGone);
process.stdin.on("error", parentGone);
