// Structured logs with pino: JSON lines for machines, pretty lines when a person watches a TTY.
import pino, { type Logger } from "pino";

export type { Logger };

export function createLogger(component: string, level = process.env.SKIFF_LOG_LEVEL ?? "info"): Logger {
  const pretty = process.stderr.isTTY && process.env.SKIFF_LOG_FORMAT !== "json";
  return pino(
    { name: component, level },
    pretty
      ? pino.transport({ target: "pino-pretty", options: { destination: 2, colorize: true, translateTime: "SYS:HH:MM:ss.l" } })
      : pino.destination(2),
  );
}
