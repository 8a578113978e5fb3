// The client side of an API call, alone: CPU µs in THIS process per unary call (Pod UpdateStatus
// and Get with a realistic Running pod, at concurrency 1 and 32) and per watch event received and
// decoded, through the stack every component uses (createServerTransport → createResourceClient).
// The peer (client-calls-server.ts, its own process) answers fixed bytes over HTTP/2 + TLS with
// client certificates, so none of its work is counted here. `--profile FILE` writes a V8 profile
// of the measured phases and prints its top functions.
import { create, toBinary } from "@bufbuild/protobuf";
import { decodeMessage, encodeMessage } from "../internal/api/codec/index.ts";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { WatchEventType } from "../gen/skiff/v1alpha1/meta_pb.js";
import { PodSchema, type Pod } from "../gen/skiff/v1alpha1/pod_pb.js";
import { PodService } from "../gen/skiff/v1alpha1/pod_service_pb.js";
import { createResourceClient } from "../internal/client/resource-client.ts";
import { createServerTransport } from "../internal/client/transport.ts";
import { testPki } from "../internal/pki/testing.ts";
import { startNodeScript } from "./lib/child.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { profileTables, profileThisProcess, summarizeProfile } from "./lib/cpuprofile.ts";

const options = {
  calls: { type: "string", default: "4000" },
  events: { type: "string", default: "40000" },
  rounds: { type: "string", default: "3" },
  profile: { type: "string" },
  only: { type: "string" },
  help: { type: "boolean", default: false },
} as const;

const usage = `usage: npm run bench -- client-calls [--calls N] [--events N] [--rounds N] [--profile FILE]
  --calls N     unary calls per measurement (default 4000)
  --events N    watch events per measurement, on one Watch (default 40000)
  --rounds N    measurements of each; the lowest is printed with the spread (default 3)
  --only TEXT   only the measurements whose name contains TEXT (e.g. "Watch", "UpdateStatus")
  --profile F   a V8 CPU profile of the measured phases to F, and its top functions`;

/** A Running pod of a Deployment, as the scheduler, controller-manager and agents see them in bench scale. */
function realisticPod(i: number): Pod {
  const now = timestampNow();
  return create(PodSchema, {
    metadata: {
      name: `web-7d9f8c6b5-${i.toString(36).padStart(5, "x")}`,
      namespace: "default",
      uid: "6f1c2b9e-1d2a-4c3b-9e8f-7a6b5c4d3e2f",
      resourceVersion: String(100_000 + i),
      creationTimestamp: now,
      labels: { app: "web", "pod-template-hash": "7d9f8c6b5" },
      ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-7d9f8c6b5", uid: "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d", controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      nodeName: "hollow-123",
      serviceAccountName: "default",
      containers: [
        {
          name: "app",
          image: "skiff.local/busybox-httpd:v1",
          command: ["httpd", "-f", "-p", "8080"],
          ports: [{ containerPort: 8080, protocol: "TCP" }],
          resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { memory: "64Mi" } },
        },
      ],
    },
    status: {
      phase: "Running",
      hostIp: "10.200.1.123",
      podIp: "10.244.1.17",
      podIps: [{ ip: "10.244.1.17" }],
      startTime: now,
      qosClass: "Burstable",
      conditions: ["PodScheduled", "Initialized", "ContainersReady", "Ready"].map((type) => ({ type, status: "True", lastTransitionTime: now })),
      containerStatuses: [
        { name: "app", ready: true, started: true, image: "skiff.local/busybox-httpd:v1", imageId: "sha256:" + "ab".repeat(32), containerId: "fake://" + "cd".repeat(32), state: { running: { startedAt: now } } },
      ],
    },
  });
}

function framed(bytes: Uint8Array): string {
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out.toString("base64");
}

const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (v.help) return void console.log(usage);
  const calls = Number(v.calls);
  const events = Number(v.events);
  const rounds = Number(v.rounds);

  const pki = await testPki();
  const dir = mkdtempSync(join(tmpdir(), "skiff-client-calls-"));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const pod = realisticPod(1);
  const answers = {
    unary: framed(toBinary(PodService.method.updateStatus.output, create(PodService.method.updateStatus.output, { pod }))),
    event: framed(toBinary(PodService.method.watch.output, create(PodService.method.watch.output, { type: WatchEventType.MODIFIED, pod }))),
  };
  const files = { cert: join(dir, "tls.crt"), key: join(dir, "tls.key"), ca: join(dir, "ca.crt"), answers: join(dir, "answers.json") };
  writeFileSync(files.cert, pki.serving.cert);
  writeFileSync(files.key, pki.serving.key);
  writeFileSync(files.ca, pki.ca.cert);
  writeFileSync(files.answers, JSON.stringify(answers));
  const server = startNodeScript(fileURLToPath(new URL("./client-calls-server.ts", import.meta.url)), [files.cert, files.key, files.ca, files.answers, String(events)]);
  const port = await new Promise<number>((resolve, reject) => {
    server.child.stdout!.on("data", (d: Buffer) => {
      const m = /listening (\d+)/.exec(String(d));
      if (m) resolve(Number(m[1]));
    });
    server.child.once("exit", () => reject(new Error(`the server exited:\n${server.output()}`)));
  });

  const transport = createServerTransport(`https://127.0.0.1:${port}`, pki.adminCredentials);
  onCleanup(() => transport.close());
  const pods = createResourceClient<Pod>(transport, "Pod");
  const answer = Buffer.from(answers.unary, "base64").length - 5;
  console.log(`client-calls: Pod of ${answer} bytes per answer; the server is pid ${server.pid} (not measured)`);

  const unaryAt = async (concurrency: number, one: () => Promise<unknown>) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next++ < calls) await one();
      }),
    );
  };
  const watchAll = async () => {
    let n = 0;
    for await (const ev of pods.watch("default", { resourceVersion: "1" })) if (ev.object) n++;
    if (n !== events) throw new Error(`the watch delivered ${n} of ${events} events`);
  };
  const allCases: { name: string; per: number; unit: string; body: () => Promise<void> }[] = [
    { name: "UpdateStatus, concurrency 1", per: calls, unit: "call", body: () => unaryAt(1, () => pods.updateStatus(pod)) },
    { name: "UpdateStatus, concurrency 32", per: calls, unit: "call", body: () => unaryAt(32, () => pods.updateStatus(pod)) },
    { name: "Get, concurrency 1", per: calls, unit: "call", body: () => unaryAt(1, () => pods.get("default", "web")) },
    { name: "Get, concurrency 32", per: calls, unit: "call", body: () => unaryAt(32, () => pods.get("default", "web")) },
    { name: "Watch event received and decoded", per: events, unit: "event", body: watchAll },
  ];
  // The same protobuf work done alone (the compiled codec, as the transport does it), measured
  // right after each case: its share of the figure, and a yardstick that moves with the
  // machine's load as the case does.
  const unaryBytes = Buffer.from(answers.unary, "base64").subarray(5);
  const eventBytes = Buffer.from(answers.event, "base64").subarray(5);
  const protobufOf: Record<string, () => void> = {
    UpdateStatus: () => {
      encodeMessage(PodService.method.updateStatus.input, create(PodService.method.updateStatus.input, { pod }));
      decodeMessage(PodService.method.updateStatus.output, unaryBytes);
    },
    Get: () => {
      encodeMessage(PodService.method.get.input, create(PodService.method.get.input, { namespace: "default", name: "web" }));
      decodeMessage(PodService.method.get.output, unaryBytes);
    },
    Watch: () => void decodeMessage(PodService.method.watch.output, eventBytes),
  };
  const protobufUs = (name: string, n: number) => {
    const work = protobufOf[name.split(/[ ,]/)[0]];
    const before = cpuUs();
    for (let i = 0; i < n; i++) work();
    return (cpuUs() - before) / n;
  };
  const cases = allCases.filter((c) => !v.only || c.name.includes(v.only));
  // Warm-up: connection, JIT.
  for (const c of cases) await c.body();
  const profiler = v.profile ? await profileThisProcess() : undefined;
  const rows: string[] = [];
  for (const c of cases) {
    const us: number[] = [];
    const own: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const before = cpuUs();
      await c.body();
      const total = (cpuUs() - before) / c.per;
      us.push(total);
      own.push(total - protobufUs(c.name, c.per));
    }
    const low = Math.min(...us);
    rows.push(
      `  ${c.name.padEnd(34)} ${low.toFixed(1).padStart(6)} µs CPU per ${c.unit}, ${Math.min(...own).toFixed(1).padStart(5)} µs without protobuf encode/decode` +
        `   (rounds: ${us.map((x) => x.toFixed(1)).join(", ")} / ${own.map((x) => x.toFixed(1)).join(", ")})`,
    );
    console.log(rows.at(-1));
  }
  if (profiler && v.profile) {
    await profiler.stop(v.profile);
    console.log(`\nprofile of the measured phases (${v.profile}):\n${profileTables(summarizeProfile(v.profile, { top: 25 }), 25, "  ")}`);
  }
}
