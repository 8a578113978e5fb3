// ContainerRuntime on containerd's native gRPC API. See README.md for the flow; each step lives
// in its own file (import.ts, images.ts, unpack.ts, containers.ts, tasks.ts, events.ts).

import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ContainerInfo, ContainerRuntime, ImageInfo, PullOptions } from "../runtime.ts";
import { pullToSink } from "../registry/pull.ts";
import { createContainerdClient, type ContainerdClient, type ContainerdClientOptions, type Services } from "./client.ts";
import { containerInfo, createContainer, removeContainer, specOf } from "./containers.ts";
import { createContentStore } from "./content.ts";
import { isNotFound, orUndefined } from "./errors.ts";
import { exitLabels, exitToRecord, recordedExit, recordExit, type RecordedExit } from "./exits.ts";
import { cgroupOomKills, createOomTracker, subscribeTaskEvents } from "./events.ts";
import { createImageStore, imageInfos, normalizeImageName, type ImageRecord, type ImageStore } from "./images.ts";
import { importOciArchive } from "./import.ts";
import { withLease } from "./lease.ts";
import type { ContainerLogOptions } from "./stdio.ts";
import { execInTask, startTask, stopTask } from "./tasks.ts";
import { unpackedTop, unpackImage } from "./unpack.ts";
import { createShimSweeper } from "./shims.ts";
import { createLogger, type Logger } from "../../log/log.ts";
import type { Container } from "../../../gen/containerd/services/containers/v1/containers_pb.js";
import { Status, type Process } from "../../../gen/containerd/types/task/task_pb.js";

export interface ContainerdRuntimeOptions extends ContainerdClientOptions {
  /** Default "overlayfs". */
  snapshotter?: string;
  /** Containers' log rotation and the loggers' report FIFO. Default: 10 MiB × 5 files, reports to nowhere. */
  containerLog?: ContainerLogOptions;
  /** Where shims found outliving their container are reported (shims.ts). */
  log?: Logger;
  /** Sweep for such shims this long after a removal (default SHIM_GRACE_MS). */
  shimGraceMs?: number;
}

/** kubelet's defaults (containerLogMaxSize 10Mi, containerLogMaxFiles 5). */
export const DEFAULT_CONTAINER_LOG: ContainerLogOptions = { maxSizeBytes: 10 * 1024 * 1024, maxFiles: 5 };

export interface ContainerdRuntime extends ContainerRuntime {
  /** The underlying client (tests and diagnostics inspect containerd's objects through it). */
  readonly client: ContainerdClient;
  /** Ends shims that outlived their container now (shims.ts; also done on its own after removals). */
  sweepShims(): Promise<string[]>;
}

export function createContainerdRuntime(opts: ContainerdRuntimeOptions = {}): ContainerdRuntime {
  const client = createContainerdClient(opts);
  const snapshotter = opts.snapshotter ?? "overlayfs";
  const containerLog = opts.containerLog ?? DEFAULT_CONTAINER_LOG;
  const content = createContentStore(client);
  const images = createImageStore(client, content);
  const ooms = createOomTracker(client, client.namespace);
  const log = opts.log ?? createLogger("containerd-runtime");
  const shims = createShimSweeper({
    svc: client,
    address: client.address,
    namespace: client.namespace,
    graceMs: opts.shimGraceMs,
    onReaped: (ids) => log.warn({ ids }, "ended containerd shims that outlived their containers (containerd could not shut them down)"),
  });
  // A previous life's leftovers (the agent stopped before its sweep); containerd not answering
  // yet: again after the grace period.
  shims.sweep().catch(() => shims.removed());

  /** Creates the records and unpacks each image, inside the caller's lease. */
  const install = async (svc: Services, records: ImageRecord[]): Promise<void> => {
    const leased = createContentStore(svc);
    const store: ImageStore = createImageStore(svc, leased);
    for (const r of records) {
      await unpackImage(svc, leased, await images.resolve(r.target), snapshotter);
      await store.put(r);
    }
  };

  const infosFor = async (digests: Set<string>): Promise<ImageInfo[]> =>
    (await imageInfos(images, await images.list())).filter((i) => digests.has(i.digest));

  const findImage = async (ref: string): Promise<ImageInfo | undefined> => {
    const all = await imageInfos(images, await images.list());
    if (/^sha256:[a-f0-9]{64}$/.test(ref)) return all.find((i) => i.id === ref || i.digest === ref);
    let name: string;
    try {
      name = normalizeImageName(ref);
    } catch {
      return undefined;
    }
    return all.find((i) => i.names.includes(name));
  };

  const oomKilled = (c: Container, task: Process | undefined): boolean => {
    if (ooms.has(c.id)) return true;
    if (task?.status !== Status.STOPPED) return false;
    try {
      const path = specOf(c).linux?.cgroupsPath;
      return typeof path === "string" && cgroupOomKills(path) > 0;
    } catch {
      return false;
    }
  };

  /** Exits being written (exits.ts), so that concurrent listings write (and report) each once. */
  const recording = new Map<string, { exit: RecordedExit; write: Promise<void> }>();

  /**
   * A container as the interface reports it. Without a task from Tasks/List (which leaves out a
   * task whose shim does not answer its state query in 2 s, a loaded machine), it is asked
   * about alone: NOT_FOUND means the task is gone (a reboot, a killed shim), another error that
   * its state is unknown for now. An exit not yet recorded on the record is recorded first.
   */
  const describe = async (c: Container, listed: Process | undefined): Promise<ContainerInfo> => {
    let task: Process | "gone" | undefined = listed;
    if (!task && !recordedExit(c)) {
      try {
        task = (await client.tasks.get({ containerId: c.id })).process;
      } catch (err) {
        if (isNotFound(err)) task = "gone";
      }
    }
    const toRecord = exitToRecord(c, task, () => oomKilled(c, task === "gone" ? undefined : task), new Date());
    if (toRecord) {
      let inFlight = recording.get(c.id);
      if (!inFlight) {
        const write = recordExit(client, c.id, toRecord).finally(() => recording.delete(c.id));
        recording.set(c.id, (inFlight = { exit: toRecord, write }));
      }
      await inFlight.write;
      c = { ...c, labels: { ...c.labels, ...exitLabels(inFlight.exit) } };
    }
    return containerInfo(c, task, oomKilled(c, task === "gone" ? undefined : task));
  };

  return {
    client,

    async version() {
      const res = await client.version.version({});
      return { name: "containerd", version: res.version };
    },

    async pullImage(ref: string, pullOpts: PullOptions = {}) {
      const pulled = await withLease(client, "pull", async (svc) => {
        const res = await pullToSink(ref, createContentStore(svc), pullOpts);
        await install(svc, [{ name: res.name, target: res.target }]);
        return res;
      });
      const [info] = await infosFor(new Set([pulled.target.digest]));
      if (!info) throw new ConnectError(`pull ${ref}: image vanished after the pull`, Code.Internal);
      return info;
    },

    async importImage(tarPath: string) {
      const records = await withLease(client, "import", async (svc) => {
        const recs = await importOciArchive(tarPath, createContentStore(svc));
        await install(svc, recs);
        return recs;
      });
      return infosFor(new Set(records.map((r) => r.target.digest)));
    },

    getImage: findImage,

    listImages: async () => imageInfos(images, await images.list()),

    async removeImage(ref: string) {
      const info = await findImage(ref);
      if (!info) return;
      // By ID: every name of the image; by name: just that name.
      const names = /^sha256:/.test(ref) ? info.names : [normalizeImageName(ref)];
      for (const name of names) await images.delete(name);
    },

    async createContainer(cfg) {
      let imageName: string;
      try {
        imageName = normalizeImageName(cfg.image);
      } catch (err) {
        throw new ConnectError(String((err as Error).message), Code.InvalidArgument);
      }
      const record = await images.get(imageName);
      if (!record) throw new ConnectError(`image "${cfg.image}" is not present (pull or import it first)`, Code.NotFound);
      const img = await images.resolve(record.target);
      const id = randomBytes(16).toString("hex");
      // A failed Tasks/Create ends its shim the way Tasks/Delete does: look after it too.
      const failed = (err: unknown) => {
        shims.removed();
        throw err;
      };
      await withLease(client, "container", async (svc) => {
        const parent = (await unpackedTop(svc, img, snapshotter)) ?? (await unpackImage(svc, createContentStore(svc), img, snapshotter));
        await createContainer(svc, {
          id,
          cfg,
          imageName,
          imageId: img.config.digest,
          image: img.configFile.config,
          stopSignal: img.configFile.stopSignal,
          parent,
          snapshotter,
          containerLog,
          namespace: client.namespace,
        });
      }).catch(failed);
      return id;
    },

    startContainer: (id) => startTask(client, id),

    stopContainer: (id, timeoutSeconds) => stopTask(client, id, timeoutSeconds),

    async removeContainer(id) {
      await stopTask(client, id, 0);
      await removeContainer(client, id, snapshotter);
      ooms.forget(id);
      shims.removed();
    },

    async listContainers(): Promise<ContainerInfo[]> {
      const [{ containers }, { tasks }] = await Promise.all([client.containers.list({}), client.tasks.list({})]);
      // Tasks/List fills a process's `id` (the container id for an init process), not container_id.
      const byId = new Map(tasks.map((t) => [t.containerId || t.id, t]));
      return Promise.all(containers.map((c) => describe(c, byId.get(c.id))));
    },

    async containerStatus(id) {
      const res = await orUndefined(() => client.containers.get({ id }));
      if (!res?.container) return undefined;
      return describe(res.container, undefined);
    },

    exec: (id, command, timeoutMs) => execInTask(client, id, command, timeoutMs),

    async *events(signal) {
      for await (const ev of subscribeTaskEvents(client, client.namespace, signal)) {
        if (ev.type === "oom") ooms.add(ev.containerId);
        yield ev;
      }
    },

    /** Ends shims that outlived their container now (shims.ts); resolves with their container ids. */
    sweepShims: () => shims.sweep(),

    async close() {
      shims.stop();
      ooms.stop();
      client.close();
    },
  };
}
