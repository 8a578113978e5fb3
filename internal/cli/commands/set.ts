// skiffctl set image deploy/web CONTAINER=IMAGE [C2=I2 …] — changes container images of
// deployments, replica sets and pods ("*=IMAGE": every container). Init containers count too,
// as in kubectl. A name no container has is an error that lists the containers there are.
import { defineCommand } from "citty";
import type { ApiObject } from "../../api/registry.ts";
import { connect, namespaceArgs, namespaceOf, serverArg, type Session } from "../context.ts";
import { AlreadyReported, CliError, describeError, isUnreachable } from "../errors.ts";
import { updateWithRetry } from "../mutate.ts";
import { resourceRef } from "../printers/object.ts";
import { namedTargets } from "../targets.ts";
import { strictFlags } from "./flags.ts";

const USAGE = "skiffctl set image deploy/NAME CONTAINER=IMAGE …";

interface Container {
  name: string;
  image: string;
}

interface PodSpecLike {
  containers?: Container[];
  initContainers?: Container[];
}

/** "web=nginx:1.27" pairs, in order; every argument after the first pair must be a pair too. */
export function splitImageArgs(positionals: string[]): { targets: string[]; images: [string, string][] } {
  const first = positionals.findIndex((p) => p.includes("="));
  if (first < 0) throw new CliError(`give at least one CONTAINER=IMAGE: ${USAGE}`);
  const images: [string, string][] = [];
  for (const p of positionals.slice(first)) {
    const eq = p.indexOf("=");
    const container = p.slice(0, eq);
    const image = p.slice(eq + 1);
    if (eq <= 0 || image === "") throw new CliError(`"${p}" is not CONTAINER=IMAGE: ${USAGE}`);
    images.push([container, image]);
  }
  return { targets: positionals.slice(0, first), images };
}

/** The pod spec of a pod, or the pod template's of a workload. */
export function podSpecOf(obj: ApiObject): PodSpecLike | undefined {
  const spec = obj.spec as { template?: { spec?: PodSpecLike } } & PodSpecLike;
  return obj.$typeName === "skiff.v1alpha1.Pod" ? spec : spec?.template?.spec;
}

/**
 * Sets the images in a pod spec; returns whether anything changed. Throws, naming the
 * containers there are, for a container the spec does not have.
 */
export function setImages(spec: PodSpecLike | undefined, images: [string, string][], what: string): boolean {
  const all = [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
  let changed = false;
  for (const [name, image] of images) {
    const hits = name === "*" ? all : all.filter((c) => c.name === name);
    if (hits.length === 0) {
      const names = all.map((c) => c.name).join(", ") || "none";
      throw new CliError(`unable to find container named "${name}" in ${what}; its containers: ${names}`);
    }
    for (const c of hits) {
      if (c.image !== image) changed = true;
      c.image = image;
    }
  }
  return changed;
}

function imageCommand(session: Session) {
  return defineCommand({
    meta: { name: "image", description: "Change container images: set image deploy/NAME CONTAINER=IMAGE …" },
    setup: strictFlags,
    args: {
      type: { type: "positional", description: "deploy/NAME (or rs/NAME, pod/NAME, KIND NAME), then CONTAINER=IMAGE pairs", required: false },
      ...namespaceArgs,
      ...serverArg,
    },
    async run({ args }) {
      const { io } = session;
      const { targets, images } = splitImageArgs(args._.map(String));
      const refs = namedTargets(targets, ["Deployment", "ReplicaSet", "Pod"], "set image", USAGE);
      const ns = namespaceOf(args);
      const api = await connect(session, args);
      let failed = false;
      for (const { kind, name } of refs) {
        try {
          await updateWithRetry(api.client(kind), ns, name, (obj) => setImages(podSpecOf(obj), images, `${kind.singular} "${name}"`));
          io.out(`${resourceRef(kind)}/${name} image updated\n`);
        } catch (err) {
          if (isUnreachable(err)) throw err;
          io.err(`Error: ${describeError(err, api.servers)}\n`);
          failed = true;
        }
      }
      if (failed) throw new AlreadyReported();
    },
  });
}

export function setCommand(session: Session) {
  return defineCommand({
    meta: { name: "set", description: "Change one field of workloads: set image" },
    subCommands: { image: imageCommand(session) },
  });
}
