// A loopback TCP proxy in front of an apiserver, so that a test can break a client's streams while
// the server stays up: cut() drops every open connection (the client reconnects at once), and
// block() also refuses new ones until unblock() (the client is "disconnected" for a while).
import { connect, createServer, type Socket } from "node:net";

export interface CuttableProxy {
  /** https://127.0.0.1:port (the target's scheme) — give this to the client's transport. */
  url: string;
  /** Connections accepted so far. */
  connections(): number;
  /** Destroys every open connection; new ones are accepted. */
  cut(): void;
  /** Destroys every open connection and every new one until unblock(). */
  block(): void;
  unblock(): void;
  close(): Promise<void>;
}

export async function startCuttableProxy(targetUrl: string): Promise<CuttableProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  let blocked = false;
  let accepted = 0;
  const track = (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
  };
  const server = createServer((client) => {
    if (blocked) {
      client.destroy();
      return;
    }
    accepted++;
    const upstream = connect(Number(target.port), target.hostname);
    track(client);
    track(upstream);
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const cut = () => {
    for (const s of sockets) s.destroy();
  };
  return {
    url: `${target.protocol}//127.0.0.1:${port}`,
    connections: () => accepted,
    cut,
    block() {
      blocked = true;
      cut();
    },
    unblock() {
      blocked = false;
    },
    close() {
      cut();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
