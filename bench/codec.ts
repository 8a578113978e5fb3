// CPU µs per decode / encode / clone of realistic objects (a Running Pod, a Ready Node, a
// Deployment): protobuf-es (fromBinary / toBinary / clone) against Skiff's compiled codec
// (internal/api/codec), measured in alternating blocks so that a noisy, shared machine
// disturbs both alike. Each figure is the median over the blocks of (CPU time / operations).
import { clone, fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { parseArgs } from "node:util";
import { DeploymentSchema } from "../gen/skiff/v1alpha1/deployment_pb.js";
import { NodeSchema } from "../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema } from "../gen/skiff/v1alpha1/pod_pb.js";
import { deployment, readyNode, runningPod } from "../internal/api/codec/fixtures.ts";
import { cloneMessage, codecStats, decodeMessage, encodeMessage } from "../internal/api/codec/index.ts";

const options = {
  ops: { type: "string", default: "5000" },
  blocks: { type: "string", default: "10" },
  help: { type: "boolean", default: false },
} as const;

const usage = `usage: npm run bench -- codec [--ops N] [--blocks N]
  --ops N      operations per block (default 5000)
  --blocks N   blocks of each implementation, alternating (default 10)`;

const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

let sink = 0; // keeps results alive so no work is optimized away

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (v.help) return void console.log(usage);
  const ops = Number(v.ops);
  const blocks = Number(v.blocks);
  const objects: Array<[string, DescMessage, any]> = [["Running Pod", PodSchema, runningPod()], ["Node", NodeSchema, readyNode()], ["Deployment", DeploymentSchema, deployment()]];
  console.log(`codec: µs of CPU per operation, median of ${blocks} alternating blocks of ${ops} (protobuf-es 2.17 vs compiled)`);
  console.log(`${"object".padEnd(12)} ${"bytes".padStart(6)}  ${"op".padEnd(7)} ${"protobuf-es".padStart(11)} ${"compiled".padStart(9)}  speed-up`);
  for (const [name, schema, msg] of objects) {
    const bytes = toBinary(schema, msg);
    const pairs: Array<[string, () => unknown, () => unknown]> = [
      ["decode", () => fromBinary(schema, bytes), () => decodeMessage(schema, bytes)],
      ["encode", () => toBinary(schema, msg), () => encodeMessage(schema, msg)],
      ["clone", () => clone(schema, msg), () => cloneMessage(schema, msg)],
    ];
    for (const [op, es, compiled] of pairs) {
      const times: [number[], number[]] = [[], []];
      for (let b = 0; b < blocks + 1; b++) {
        [es, compiled].forEach((f, i) => {
          const t = cpuUs();
          for (let k = 0; k < ops; k++) sink += f() === undefined ? 0 : 1;
          if (b > 0) times[i].push((cpuUs() - t) / ops); // block 0 warms up (compiles, JIT)
        });
      }
      const [a, c] = [median(times[0]), median(times[1])];
      console.log(`${name.padEnd(12)} ${String(bytes.length).padStart(6)}  ${op.padEnd(7)} ${a.toFixed(2).padStart(11)} ${c.toFixed(2).padStart(9)}  ×${(a / c).toFixed(1)}`);
    }
  }
  const fallbacks = codecStats.decodeFallbacks + codecStats.encodeFallbacks + codecStats.cloneFallbacks;
  if (fallbacks > 0) throw new Error(`the compiled codec fell back to protobuf-es ${fallbacks} times on these objects`);
  if (sink < 0) console.log(sink);
}
