// How a component (scheduler, controller-manager, agent) reaches the apiserver and proves who it
// is: a skiffctl-style config file (--kubeconfig, its current context) and/or the flags kubectl
// names. The user's own skiffctl config is never read by a component.
import type { Transport } from "@connectrpc/connect";
import { createApiTransport } from "../client/transport.ts";
import { resolveConnection } from "../cli/connection.ts";
import type { Logger } from "../log/log.ts";

export const componentClientArgs = {
  kubeconfig: { type: "string", description: "Config file (skiffctl's kubeconfig shape) with the apiserver and this component's credentials", valueHint: "FILE" },
  server: { type: "string", description: "The apiserver URL, or several comma-separated (overrides the config file's; default https://127.0.0.1:6443); more are learned from the kubernetes Endpoints", valueHint: "URLS" },
  "certificate-authority": { type: "string", description: "CA file the apiserver's certificate is checked against", valueHint: "FILE" },
  "client-certificate": { type: "string", description: "This component's client certificate file", valueHint: "FILE" },
  "client-key": { type: "string", description: "Its key file", valueHint: "FILE" },
  token: { type: "string", description: "A bearer token instead of a client certificate (skiff agent: a join token K10…, see --data-dir)", valueHint: "TOKEN" },
} as const;

export async function componentTransport(args: {
  kubeconfig?: string;
  server?: string;
  "certificate-authority"?: string;
  "client-certificate"?: string;
  "client-key"?: string;
  token?: string;
}, log?: Logger): Promise<{ server: string; transport: Transport; /** The CA (PEM) the apiserver's certificate is checked against. */ ca: string }> {
  // Without --kubeconfig only the flags count: point the config lookup at nothing.
  const c = await resolveConnection({ ...args, kubeconfig: args.kubeconfig || "/dev/null" }, {});
  // Components hold every apiserver: the ones given and those the `kubernetes` Endpoints list.
  return { server: c.server, transport: createApiTransport(c.servers, c.credentials, {
    discover: true,
    onMove: (from, to, reason) => log?.warn({ from, to, reason }, "apiserver unavailable: moving to another"),
  }), ca: String(c.credentials.ca) };
}
