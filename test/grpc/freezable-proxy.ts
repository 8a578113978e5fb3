// A loopback TCP proxy that can play a dead peer: freeze() stops forwarding on every open
// connection without closing it (no FIN, no RST — like a machine that vanished), while new
// connections pass through as usual. thaw() lets the frozen connections go on where they stopped.
import { connect, createServer, type Socket } from "node:net";
import { LOOPBACK } from "../harness/ports.ts";

export interface FreezableProxy {
  url: string;
  /** Connections accepted so far. */
  connections(): number;
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

/** target.tls: the target speaks TLS (the proxy passes it through untouched; only url's scheme says so). */
export async function startFreezableProxy(target: { host: string; port: number; tls?: boolean }): Promise<FreezableProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let accepted = 0;
  const server = createServer((client) => {
    accepted++;
    const upstream = connect(target.port, target.host);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    for (const s of pair) s.on("error", () => s.destroy());
    client.pipe(upstream).pipe(client);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", drop);
    upstream.on("close", drop);
  });
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  const port = (server.address() as { port: number }).port;
  const destroyAll = () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
  };
  return {
    url: `${target.tls ? "https" : "http"}://${LOOPBACK}:${port}`,
    connections: () => accepted,
    freeze() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    thaw() {
      for (const [client, upstream] of pairs) {
        client.pipe(upstream);
        upstream.pipe(client);
      }
    },
    close() {
      destroyAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
