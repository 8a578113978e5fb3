#!/usr/bin/env node
// skiffctl: the command-line client of a Skiff cluster. All of it lives in internal/cli; this
// file only wires the process (arguments, stdio, Ctrl-C) to it and exits with its code.
import { runSkiffctl } from "../internal/cli/main.ts";

const interrupt = new AbortController();
process.once("SIGINT", () => interrupt.abort());
process.once("SIGTERM", () => interrupt.abort());
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0); // e.g. `skiffctl get pods | head -1`
});

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const code = await runSkiffctl(process.argv.slice(2), {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  readStdin,
  env: process.env,
  signal: interrupt.signal,
});
// Open HTTP/2 sessions would keep the process alive: flush, then exit.
process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
