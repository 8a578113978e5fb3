// The address the apiserver tells pods to reach it at (the `kubernetes` Service's Endpoints).
import os from "node:os";
import type { Logger } from "pino";

const WILDCARD = new Set(["0.0.0.0", "::", ""]);

/** The listen host if it is one address, else the machine's first non-internal IPv4. */
export function advertisedAddress(listenHost: string, log?: Logger): string {
  let addr = listenHost;
  if (WILDCARD.has(listenHost)) {
    const found = Object.values(os.networkInterfaces())
      .flat()
      .find((a) => a && a.family === "IPv4" && !a.internal);
    addr = found?.address ?? "127.0.0.1";
  }
  if (addr.startsWith("127.") || addr === "::1" || addr === "localhost") {
    log?.info({ address: addr }, "the apiserver listens on loopback only: pods cannot reach it through the kubernetes service (use --listen or --advertise-address with an address of this machine)");
  }
  return addr;
}
