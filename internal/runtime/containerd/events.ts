// Task events from containerd's event stream (Events/Subscribe, filtered to our namespace):
// /tasks/exit of a container's init process and /tasks/oom. containerd publishes the OOM event
// just before the exit event; an OomTracker remembers which containers were OOM-killed (a small
// map, forgotten when the container is removed), and the cgroup's own oom_kill counter covers
// a kill whose event we did not see (e.g. the agent was restarting).

import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { fromBinary } from "@bufbuild/protobuf";
import { TaskExitSchema, TaskOOMSchema } from "../../../gen/containerd/events/task_pb.js";
import type { RuntimeEvent } from "../runtime.ts";
import type { Services } from "./client.ts";

export const TOPIC_EXIT = "/tasks/exit";
export const TOPIC_OOM = "/tasks/oom";
const TYPE_EXIT = "containerd.events.TaskExit";
const TYPE_OOM = "containerd.events.TaskOOM";

const tsDate = (t: { seconds: bigint; nanos: number } | undefined, fallback: Date): Date =>
  t ? new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)) : fallback;

/** The type name of an Any, with or without a `…/` URL prefix. */
const typeName = (typeUrl: string) => typeUrl.slice(typeUrl.lastIndexOf("/") + 1);

/** Exits of containers' init processes and OOM kills in `namespace`, until `signal` aborts. */
export async function* subscribeTaskEvents(svc: Pick<Services, "events">, namespace: string, signal: AbortSignal): AsyncGenerator<RuntimeEvent> {
  const filters = [TOPIC_EXIT, TOPIC_OOM].map((t) => `topic=="${t}",namespace=="${namespace}"`);
  try {
    for await (const env of svc.events.subscribe({ filters }, { signal })) {
      if (!env.event) continue;
      const at = tsDate(env.timestamp, new Date());
      const type = typeName(env.event.typeUrl);
      if (env.topic === TOPIC_EXIT && type === TYPE_EXIT) {
        const e = fromBinary(TaskExitSchema, env.event.value);
        if (e.id !== e.containerId) continue; // an exec process
        yield { type: "exit", containerId: e.containerId, exitCode: e.exitStatus, at: tsDate(e.exitedAt, at) };
      } else if (env.topic === TOPIC_OOM && type === TYPE_OOM) {
        const e = fromBinary(TaskOOMSchema, env.event.value);
        yield { type: "oom", containerId: e.containerId, at };
      }
    }
  } catch (err) {
    if (signal.aborted) return;
    throw err;
  }
}

/** How many times the kernel OOM-killed in a cgroup (v1 memory.oom_control, v2 memory.events). */
export function cgroupOomKills(cgroupsPath: string, root = "/sys/fs/cgroup"): number {
  for (const [file, re] of [
    [`${root}/memory${cgroupsPath}/memory.oom_control`, /^oom_kill (\d+)$/m],
    [`${root}${cgroupsPath}/memory.events`, /^oom_kill (\d+)$/m],
  ] as const) {
    try {
      const m = re.exec(readFileSync(file, "utf8"));
      if (m) return Number(m[1]);
    } catch {
      // not this cgroup version, or the cgroup is gone
    }
  }
  return 0;
}

export interface OomTracker {
  has(containerId: string): boolean;
  add(containerId: string): void;
  forget(containerId: string): void;
  /** Stops the background subscription. */
  stop(): void;
}

/** Keeps a subscription to /tasks/oom open (resubscribing after errors) and remembers the ids. */
export function createOomTracker(svc: Pick<Services, "events">, namespace: string): OomTracker {
  const ids = new Set<string>();
  const ctl = new AbortController();
  const loop = async () => {
    while (!ctl.signal.aborted) {
      try {
        for await (const ev of subscribeTaskEvents(svc, namespace, ctl.signal)) {
          if (ev.type === "oom") ids.add(ev.containerId);
        }
      } catch {
        // containerd restarting: resubscribe
      }
      await sleep(1000, undefined, { signal: ctl.signal }).catch(() => {});
    }
  };
  void loop();
  return {
    has: (id) => ids.has(id),
    add: (id) => void ids.add(id),
    forget: (id) => void ids.delete(id),
    stop: () => ctl.abort(),
  };
}
