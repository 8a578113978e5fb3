// Started by crash.test.ts as its own process: brings up two nodes with a running pod, prints
// what it made as one JSON line, then waits to be SIGKILLed (a crashed test run).
import { serverContainer, startMultiNode } from "../harness/multinode.ts";

const c = await startMultiNode({ nodes: 2 });
const pod = await c.createPod(c.node(1), "web", { containers: [serverContainer()] });
const running = await c.waitForRunning("web");
process.stdout.write(
  `${JSON.stringify({
    runName: c.runName,
    containerdDir: c.ctrd.dir,
    dir: c.dir,
    podNetns: `${c.node(1).network}-${pod.metadata!.uid}`,
    podIP: running.status!.podIp,
    agentPids: c.nodes.map((n) => n.agent!.pid),
  })}\n`,
);
setInterval(() => {}, 60_000);
