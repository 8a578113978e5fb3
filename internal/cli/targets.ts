// The objects a workload command acts on, named the ways kubectl accepts: `deploy/web`,
// `deployment web`, `deployments web db`, `rs/a deploy/b`.
import type { Kind } from "../api/registry.ts";
import { parseTargets } from "./commands/get.ts";
import { CliError } from "./errors.ts";

export interface ObjectRef {
  kind: Kind;
  name: string;
}

/**
 * The named objects of `positionals`, each of one of the `allowed` kinds. `command` and `usage`
 * word the errors ("scale", "skiffctl scale deploy/NAME --replicas N").
 */
export function namedTargets(positionals: string[], allowed: readonly string[], command: string, usage: string): ObjectRef[] {
  const which = `which ${listOf(allowed.map((k) => k.toLowerCase()), "or")}? ${usage}`;
  if (positionals.length === 0) throw new CliError(which);
  const refs: ObjectRef[] = [];
  for (const t of parseTargets(positionals)) {
    if (!allowed.includes(t.kind.kind)) {
      throw new CliError(`${command} works on ${listOf(allowed.map(pluralOf), "and")}, not ${t.kind.plural} (${usage})`);
    }
    if (t.names.length === 0) throw new CliError(which);
    for (const name of t.names) refs.push({ kind: t.kind, name });
  }
  return refs;
}

const pluralOf = (kind: string) => `${kind.toLowerCase()}s`;

/** "a", "a and b", "a, b and c". */
const listOf = (xs: string[], and: string) => (xs.length < 2 ? xs.join("") : `${xs.slice(0, -1).join(", ")} ${and} ${xs[xs.length - 1]}`);
