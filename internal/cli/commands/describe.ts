// skiffctl describe KIND [NAME…] — a readable page per object, with its events.
import { defineCommand } from "citty";
import { kindByName, type ApiObject, type Kind } from "../../api/registry.ts";
import { connect, namespaceArgs, namespaceOf, resolveKind, serverArg, type Api, type Session } from "../context.ts";
import { CliError } from "../errors.ts";
import { describeObject, type DescribeExtras } from "../printers/describe.ts";
import type { EventLike } from "../printers/describe-layout.ts";
import { strictFlags } from "./flags.ts";
import { listAllPages } from "../../client/pager.ts";

/** Events about an object: matched by the involved object's kind and name (and uid when set). */
async function eventsFor(api: Api, kind: Kind, obj: ApiObject): Promise<EventLike[]> {
  const evKind = kindByName("Event")!;
  const name = obj.metadata?.name ?? "";
  const ns = kind.namespaced ? (obj.metadata?.namespace ?? "") : "";
  const { items } = await listAllPages(api.client(evKind), ns, { fieldSelector: `involvedObject.kind=${kind.kind},involvedObject.name=${name}` });
  const uid = obj.metadata?.uid;
  return (items as any[]).filter((e) => !e.involvedObject?.uid || e.involvedObject.uid === uid) as EventLike[];
}

async function extrasFor(api: Api, kind: Kind, obj: ApiObject): Promise<DescribeExtras> {
  const extras: DescribeExtras = { events: await eventsFor(api, kind, obj) };
  const name = obj.metadata?.name ?? "";
  if (kind.kind === "Service") {
    extras.endpoints = await api
      .client(kindByName("Endpoints")!)
      .get(obj.metadata?.namespace ?? "", name)
      .catch(() => undefined);
  }
  if (kind.kind === "Node") {
    extras.pods = (await listAllPages(api.client(kindByName("Pod")!), "", { fieldSelector: `spec.nodeName=${name}` })).items;
  }
  if (kind.kind === "PersistentVolumeClaim") {
    // "Used By": the namespace's pods with a volume of this claim.
    const pods = (await listAllPages(api.client(kindByName("Pod")!), obj.metadata?.namespace ?? "", {})).items as any[];
    extras.pods = pods.filter((p) => (p.spec?.volumes ?? []).some((v: any) => v.persistentVolumeClaim?.claimName === name));
  }
  return extras;
}

export function describeCommand(session: Session) {
  return defineCommand({
    meta: { name: "describe", description: "Show details of objects and their events: describe KIND [NAME…]" },
    setup: strictFlags,
    args: {
      type: { type: "positional", description: "kind, e.g. pod, deploy, svc, node", required: true },
      selector: { type: "string", alias: "l", description: "label selector (without names)", valueHint: "SELECTOR" },
      ...namespaceArgs,
      ...serverArg,
    },
    async run({ args }) {
      let [kindName, ...names] = args._.map(String);
      if (kindName.includes("/")) {
        const [k, n] = kindName.split("/");
        kindName = k;
        names = [n, ...names];
      }
      const kind = resolveKind(kindName);
      const api = await connect(session, args);
      const client = api.client(kind);
      const ns = kind.namespaced ? namespaceOf(args) : "";
      const objs = names.length
        ? await Promise.all(names.map((n) => client.get(ns, n)))
        : (await listAllPages(client, ns, { labelSelector: args.selector })).items;
      if (objs.length === 0) throw new CliError(`no ${kind.plural} found${kind.namespaced ? ` in namespace "${ns}"` : ""}`);
      const pages: string[] = [];
      for (const o of objs) pages.push(describeObject(kind, o, await extrasFor(api, kind, o)));
      session.io.out(pages.join("\n\n"));
    },
  });
}
