// A UDP server and client for the proxy tests, run with `ip netns exec <pod netns>` (the test
// image's busybox has no UDP nc). One line of output per event.
//
//   udp-peer.ts serve PORT NAME                 answers every datagram with NAME; prints "ready"
//   udp-peer.ts ask IP PORT COUNT INTERVAL_MS [SOURCE_PORT]
//                                               sends COUNT datagrams from one socket, prints each
//                                               answer, "timeout" (none in 1 s) or "error <code>"
import dgram from "node:dgram";

const [mode, ...args] = process.argv.slice(2);

if (mode === "serve") {
  const [port, name] = args;
  const sock = dgram.createSocket("udp4");
  sock.on("message", (_msg, rinfo) => sock.send(name, rinfo.port, rinfo.address));
  sock.bind(Number(port), "0.0.0.0", () => console.log("ready"));
} else if (mode === "ask") {
  const [ip, port, count, interval, sourcePort] = args;
  const sock = dgram.createSocket("udp4");
  let waiting: ((line: string) => void) | undefined;
  sock.on("message", (msg) => waiting?.(msg.toString()));
  // ICMP port unreachable arrives as an error on a connected socket.
  sock.on("error", (err: NodeJS.ErrnoException) => waiting?.(`error ${err.code}`));
  sock.bind(Number(sourcePort ?? 0), () => {
    sock.connect(Number(port), ip, async () => {
      for (let i = 0; i < Number(count); i++) {
        const line = await new Promise<string>((resolve) => {
          const timer = setTimeout(() => resolve("timeout"), 1000);
          waiting = (l) => {
            clearTimeout(timer);
            resolve(l);
          };
          sock.send("?");
        });
        waiting = undefined;
        console.log(line);
        await new Promise((r) => setTimeout(r, Number(interval)));
      }
      sock.close();
    });
  });
} else {
  console.error("usage: udp-peer.ts serve PORT NAME | ask IP PORT COUNT INTERVAL_MS [SOURCE_PORT]");
  process.exit(2);
}
