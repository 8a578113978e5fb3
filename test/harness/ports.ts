// Free loopback ports, found by letting the kernel pick (bind port 0) and releasing them.
// Another process can grab a port between release and use: callers that start a server on it
// should retry on "address in use" (startEtcd does).

import { createServer, type Server } from "node:net";

export const LOOPBACK = "127.0.0.1";

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: LOOPBACK, port: 0, exclusive: true }, () => {
      const addr = server.address();
      if (addr && typeof addr === "object") resolve(addr.port);
      else reject(new Error("no port from listen"));
    });
  });
}

/** n distinct free ports (held open together while picking, so they differ). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createServer());
  try {
    return await Promise.all(servers.map(listen));
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))));
  }
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0];
}
