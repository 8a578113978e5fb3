// Runs one probe once: exec (in the container, exit 0), httpGet (a status from 200 to 399),
// tcpSocket (the connection is accepted) or grpc (grpc-health.ts: SERVING), each bounded by the
// probe's timeout.
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { Container, HTTPGetAction, Probe } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ContainerRuntime } from "../runtime/runtime.ts";
import { grpcHealthCheck } from "./grpc-health.ts";

export interface ProbeTarget {
  runtime: ContainerRuntime;
  containerId: string;
  container: Container;
  podIP: string;
}

export interface ProbeOutcome {
  success: boolean;
  /** Why it failed, as shown in the container's termination message and the logs. */
  message: string;
}

/** A port by number, or by the name of one of the container's ports. */
export function resolvePort(port: string, container: Container): number {
  if (/^\d+$/.test(port)) return Number(port);
  const named = container.ports.find((p) => p.name === port);
  if (!named) throw new Error(`port "${port}" is neither a number nor a named port of container "${container.name}"`);
  return named.containerPort;
}

function httpGet(url: URL, headers: Record<string, string>, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const mod = url.protocol === "https:" ? https : http;
    // Like Kubernetes, HTTPS probes do not verify the certificate.
    const req = mod.get(url, { headers: { "user-agent": "skiff-probe/1.0", ...headers }, timeout: timeoutMs, rejectUnauthorized: false }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      resolve(code >= 200 && code < 400 ? { success: true, message: "" } : { success: false, message: `HTTP probe failed with statuscode: ${code}` });
    });
    req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs}ms`)));
    req.on("error", (err) => resolve({ success: false, message: `Get "${url.href}": ${err.message}` }));
  });
}

function tcpConnect(host: string, port: number, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (outcome: ProbeOutcome) => {
      socket.destroy();
      resolve(outcome);
    };
    socket.setTimeout(timeoutMs, () => done({ success: false, message: `dial tcp ${host}:${port}: i/o timeout` }));
    socket.once("connect", () => done({ success: true, message: "" }));
    socket.once("error", (err) => done({ success: false, message: `dial tcp ${host}:${port}: ${err.message}` }));
  });
}

/** An httpGet action (probe or lifecycle hook) against the pod's IP unless it names a host. */
export function httpGetAction(g: HTTPGetAction, target: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  const host = g.host || target.podIP;
  const port = resolvePort(g.port, target.container);
  const scheme = (g.scheme || "HTTP").toLowerCase();
  const path = g.path ? (g.path.startsWith("/") ? g.path : `/${g.path}`) : "/";
  const url = new URL(`${scheme}://${host.includes(":") ? `[${host}]` : host}:${port}${path}`);
  const headers: Record<string, string> = {};
  for (const h of g.httpHeaders) headers[h.name] = h.value;
  return httpGet(url, headers, timeoutMs);
}

export async function runProbe(probe: Probe, target: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  try {
    if (probe.exec) {
      const res = await target.runtime.exec(target.containerId, probe.exec.command, timeoutMs);
      if (res.exitCode === 0) return { success: true, message: "" };
      const out = `${res.stdout}${res.stderr}`.trim();
      return { success: false, message: `command ${JSON.stringify(probe.exec.command)} exited with ${res.exitCode}${out ? `: ${out}` : ""}` };
    }
    if (probe.httpGet) return await httpGetAction(probe.httpGet, target, timeoutMs);
    if (probe.tcpSocket) {
      return await tcpConnect(probe.tcpSocket.host || target.podIP, resolvePort(probe.tcpSocket.port, target.container), timeoutMs);
    }
    if (probe.grpc) return await grpcHealthCheck(target.podIP, probe.grpc.port, probe.grpc.service, timeoutMs);
    return { success: false, message: "probe has no exec, httpGet, tcpSocket or grpc action" };
  } catch (err) {
    return { success: false, message: err instanceof Error ? err.message : String(err) };
  }
}
