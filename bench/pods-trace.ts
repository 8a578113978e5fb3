// Where a pod's time goes, without touching the agent: the agent is handed wrapped versions of
// what it calls out to, and every call is recorded as a span (what, pod uid when known, start,
// end, outcome):
//   network     PodNetwork.setUp / tearDown (netns creation + CNI ADD, and back)
//   runtime     every ContainerRuntime method (createContainer, startContainer, listContainers, …)
//   containerd  every containerd RPC the runtime makes (Snapshots/Prepare, Tasks/Create, …), by
//               wrapping the service clients of the runtime's ContainerdClient object, including
//               the ones it makes inside leases (withLease)
//   api         every unary call the agent makes to the apiserver (UpdateStatus carries the pod's
//               uid and the phase it writes)
//   exec        every program this process spawns (`ip netns add`, the CNI plugins by
//               CNI_COMMAND, …), from spawn to close: node:child_process's spawn is replaced for
//               the whole process and the ESM bindings of it refreshed (module.syncBuiltinESMExports)
// Spans use performance.now(), like the benchmark's own clock.
import type { Transport } from "@connectrpc/connect";
import type { ChildProcess } from "node:child_process";
import { createRequire, syncBuiltinESMExports } from "node:module";
import { basename } from "node:path";
import { performance } from "node:perf_hooks";
import type { PodNetwork } from "../internal/agent/network.ts";
import type { ContainerdClient, Services } from "../internal/runtime/containerd/index.ts";

export interface Span {
  /** "network.setUp", "runtime.createContainer", "containerd.Tasks.Create", "api.PodService.UpdateStatus", … */
  what: string;
  /** The pod's uid, when the call names it. */
  uid?: string;
  start: number;
  end: number;
  ok: boolean;
  /** For UpdateStatus: the phase written. */
  detail?: string;
}

export interface Tracer {
  spans: Span[];
  network(n: PodNetwork): PodNetwork;
  runtime<T extends object>(rt: T): T;
  /** Wraps the service clients of a containerd client in place (the runtime holds this object). */
  containerd(client: ContainerdClient): void;
  transport(t: Transport): Transport;
  /** Traces every child process this process spawns from now on. */
  execs(): void;
  /** Spans of one kind that started in [from, to). */
  between(from: number, to: number, prefix?: string): Span[];
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

const isPromise = (x: unknown): x is Promise<unknown> => typeof (x as { then?: unknown } | null)?.then === "function";

export function createTracer(): Tracer {
  const spans: Span[] = [];
  const containerPod = new Map<string, string>();

  /** Records a call that returns a promise; anything else (streams, iterables) passes through. */
  function record<R>(what: string, uid: string | undefined, call: () => R, after?: (value: unknown, span: Span) => void): R {
    const start = performance.now();
    const r = call();
    if (!isPromise(r)) return r;
    const span: Span = { what, uid, start, end: start, ok: true };
    spans.push(span);
    return r.then(
      (value) => {
        span.end = performance.now();
        after?.(value, span);
        return value;
      },
      (err: unknown) => {
        span.end = performance.now();
        span.ok = false;
        throw err;
      },
    ) as R;
  }

  function wrapObject<T extends object>(target: T, prefix: string, uidOf?: (method: string, args: unknown[]) => string | undefined, after?: (method: string, args: unknown[], value: unknown) => void): T {
    return new Proxy(target, {
      get(obj, prop, receiver) {
        const v = Reflect.get(obj, prop, receiver);
        if (typeof v !== "function" || typeof prop !== "string") return v;
        return (...args: unknown[]) =>
          record(`${prefix}.${prop}`, uidOf?.(prop, args), () => (v as (...a: unknown[]) => unknown).apply(obj, args), (value) => after?.(prop, args, value));
      },
    });
  }

  function wrapServices(svc: Services): Services {
    const out = { ...svc } as Record<string, object>;
    for (const [name, client] of Object.entries(svc)) {
      if (typeof client !== "object" || client === null) continue;
      const service = name.charAt(0).toUpperCase() + name.slice(1);
      out[name] = wrapObject(client as object, `containerd.${service}`, (method, args) => {
        const req = args[0] as { containerId?: string; id?: string; key?: string } | undefined;
        const id = req?.containerId || req?.id || req?.key;
        return id ? containerPod.get(id) : undefined;
      });
    }
    return out as unknown as Services;
  }

  return {
    spans,
    network(n) {
      return {
        setUp: (pod) => record("network.setUp", pod.metadata?.uid, () => n.setUp(pod)),
        tearDown: (uid) => record("network.tearDown", uid, () => n.tearDown(uid)),
        list: () => n.list(),
      };
    },
    runtime(rt) {
      return wrapObject(
        rt,
        "runtime",
        (method, args) => {
          if (method === "createContainer") return (args[0] as { podUid?: string }).podUid;
          if (typeof args[0] === "string") return containerPod.get(args[0]);
          return undefined;
        },
        (method, args, value) => {
          if (method === "createContainer" && typeof value === "string") containerPod.set(value, (args[0] as { podUid: string }).podUid);
        },
      );
    },
    containerd(client) {
      const services = client as unknown as Record<string, unknown>;
      const wrapped = wrapServices(client) as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(wrapped)) if (typeof v === "object" && v !== null) services[k] = v;
      const withLease = client.withLease.bind(client);
      services.withLease = (leaseId: string) => wrapServices(withLease(leaseId));
    },
    transport(t) {
      return {
        unary(method, signal, timeoutMs, header, input, contextValues) {
          const pod = (input as { pod?: { metadata?: { uid?: string }; status?: { phase?: string } } }).pod;
          const what = `api.${method.parent.name}.${method.name}`;
          return record(what, pod?.metadata?.uid, () => t.unary(method, signal, timeoutMs, header, input, contextValues), (_v, span) => {
            if (method.name === "UpdateStatus") span.detail = pod?.status?.phase;
          });
        },
        stream: (method, signal, timeoutMs, header, input, contextValues) => t.stream(method, signal, timeoutMs, header, input, contextValues),
      };
    },
    execs() {
      const cp = createRequire(import.meta.url)("node:child_process") as { spawn: (...a: unknown[]) => ChildProcess };
      const original = cp.spawn;
      cp.spawn = (...a: unknown[]) => {
        const [file, args, options] = a as [string, string[] | undefined, { env?: Record<string, string | undefined> } | undefined];
        const argv = Array.isArray(args) ? args : [];
        const cniCommand = options?.env?.CNI_COMMAND;
        const name = basename(String(file));
        const what = `exec.${name} ${cniCommand ?? argv.filter((x, i) => !x.startsWith("-") && argv[i - 1] !== "-n" && !UUID.test(x)).slice(0, 2).join(" ")}`.trim();
        const uid = options?.env?.CNI_CONTAINERID ?? argv.join(" ").match(UUID)?.[0];
        const span: Span = { what, uid, start: performance.now(), end: NaN, ok: true };
        spans.push(span);
        const child = original(...a);
        child.once("close", (code: number | null) => {
          span.end = performance.now();
          span.ok = code === 0;
        });
        return child;
      };
      syncBuiltinESMExports();
    },
    between(from, to, prefix = "") {
      return spans.filter((s) => s.start >= from && s.start < to && s.what.startsWith(prefix));
    },
  };
}
