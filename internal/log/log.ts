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

/** The logger a component's `componentLog` call started from, and the component path so far. */
const componentOf = new WeakMap<Logger, { base: Logger; path: string }>();

/**
 * A child logger for a part of a component. pino writes every child's bindings again, so nested
 * `child({ component })` calls printed the key twice ("component":"agent","component":"dns");
 * here the name is appended to the path instead: "component":"agent/dns".
 */
export function componentLog(parent: Logger, name: string): Logger {
  const known = componentOf.get(parent);
  const base = known?.base ?? parent;
  const path = known ? `${known.path}/${name}` : name;
  const child = base.child({ component: path });
  componentOf.set(child, { base, path });
  return child;
}
