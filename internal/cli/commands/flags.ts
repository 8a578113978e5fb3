// What citty's lenient parsing leaves to us: flags given more than once (-f a.yaml -f b.yaml;
// citty keeps only the last) and flags a command does not know (citty ignores them).
import { CliError } from "../errors.ts";

/** Every value of --name / -s in raw arguments, in order ("--name v", "--name=v", "-s v", "-sv"). */
export function flagValues(rawArgs: string[], name: string, short?: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i];
    if (a === "--") break;
    if (a === `--${name}` || (short && a === `-${short}`)) {
      if (i + 1 < rawArgs.length) out.push(rawArgs[++i]);
    } else if (a.startsWith(`--${name}=`)) {
      out.push(a.slice(name.length + 3));
    } else if (short && a.startsWith(`-${short}`) && !a.startsWith("--") && a.length > 2) {
      out.push(a.slice(2).replace(/^=/, ""));
    }
  }
  return out;
}

interface FlagDef {
  type?: string;
  alias?: string | string[];
}

/**
 * Throws for a flag the command does not define (citty ignores them, so a typo such as
 * --namspace would silently turn its value into a name).
 */
export function rejectUnknownFlags(rawArgs: string[], defs: Record<string, FlagDef>): void {
  const long = new Set(["help"]);
  const shortBool = new Set(["h"]);
  const shortValue = new Set<string>();
  for (const [name, def] of Object.entries(defs)) {
    if (def.type === "positional") continue;
    long.add(name);
    if (def.type === "boolean") long.add(`no-${name}`);
    for (const a of typeof def.alias === "string" ? [def.alias] : (def.alias ?? [])) {
      if (a.length === 1) (def.type === "boolean" ? shortBool : shortValue).add(a);
      else long.add(a);
    }
  }
  const takesValue = (name: string) => defs[name] && defs[name].type !== "boolean";
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i];
    if (a === "--") return;
    if (a === "-" || !a.startsWith("-")) continue;
    if (a.startsWith("--")) {
      const name = a.slice(2).split("=")[0];
      if (!long.has(name)) throw new CliError(`unknown flag --${name}`);
      if (!a.includes("=") && takesValue(name)) i++;
      continue;
    }
    // -o wide, -owide, -Aw
    for (let j = 1; j < a.length; j++) {
      const c = a[j];
      if (shortValue.has(c)) {
        if (j === a.length - 1) i++;
        break;
      }
      if (!shortBool.has(c)) throw new CliError(`unknown flag -${c}${a.length > 2 ? ` (in ${a})` : ""}`);
    }
  }
}

/** A command `setup` hook that rejects unknown flags before the command runs. */
export function strictFlags({ rawArgs, cmd }: { rawArgs: string[]; cmd: { args?: unknown } }): void {
  rejectUnknownFlags(rawArgs, (cmd.args ?? {}) as Record<string, FlagDef>);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A Go-style duration flag ("30s", "5m", "1h30m", "500ms"; "0" or unset = no limit), in
 * milliseconds. A bare number counts as seconds, as kubectl's --timeout reads it.
 */
export function parseDuration(flag: string, value: string | undefined): number {
  const v = (value ?? "").trim();
  if (v === "" || v === "0") return 0;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  for (let m = re.exec(v); m; m = re.exec(v)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]];
    at = re.lastIndex;
  }
  if (at !== v.length) throw new CliError(`--${flag} must be a duration such as 30s, 5m or 1h30m, got "${value}"`);
  return total;
}

/** "5m", "1h30m", "45s", "250ms": a duration as the user would write it. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const s = Math.round(ms / 1000);
  const parts = [[Math.floor(s / 3600), "h"], [Math.floor((s % 3600) / 60), "m"], [s % 60, "s"]] as const;
  return parts.filter(([n]) => n > 0).map(([n, u]) => `${n}${u}`).join("");
}

/** A whole-number flag (0 or more); undefined when not given. */
export function parseCount(flag: string, value: string | undefined): number | undefined {
  if (value === undefined || value === "") return undefined;
  const v = value.trim();
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new CliError(`--${flag} must be a whole number (0 or more), got "${value}"`);
  return Number(v);
}
