// The container parts of `describe`, shared by pods and pod templates (deployments, replica
// sets): image, ports, command, state, readiness, restarts, resources, probes, environment.
import { formatTime, mapLines, renderFields, type Field } from "./describe-layout.ts";

function stateFields(label: string, st: any): Field | undefined {
  if (!st) return undefined;
  if (st.running) return [label, "Running", [["Started", formatTime(st.running.startedAt)]]];
  if (st.waiting) return [label, "Waiting", [["Reason", st.waiting.reason || undefined], ["Message", st.waiting.message || undefined]]];
  if (st.terminated) {
    const t = st.terminated;
    return [
      label,
      "Terminated",
      [
        ["Reason", t.reason || undefined],
        ["Message", t.message || undefined],
        ["Exit Code", String(t.exitCode)],
        ["Signal", t.signal ? String(t.signal) : undefined],
        ["Started", formatTime(t.startedAt)],
        ["Finished", formatTime(t.finishedAt)],
      ],
    ];
  }
  return undefined;
}

/** "http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3". */
export function probeText(p: any): string | undefined {
  if (!p) return undefined;
  let action = "unknown";
  if (p.httpGet) {
    const h = p.httpGet;
    action = `http-get ${(h.scheme || "HTTP").toLowerCase()}://${h.host ?? ""}:${h.port}${h.path || "/"}`;
  } else if (p.tcpSocket) action = `tcp-socket ${p.tcpSocket.host ?? ""}:${p.tcpSocket.port}`;
  else if (p.exec) action = `exec [${(p.exec.command ?? []).join(" ")}]`;
  return `${action} delay=${p.initialDelaySeconds ?? 0}s timeout=${p.timeoutSeconds ?? 0}s period=${p.periodSeconds ?? 0}s #success=${p.successThreshold ?? 0} #failure=${p.failureThreshold ?? 0}`;
}

function envLines(c: any): string[] {
  const out: string[] = [];
  for (const e of c.env ?? []) {
    const f = e.valueFrom;
    if (!f) out.push(`${e.name}:  ${e.value ?? ""}`);
    else if (f.fieldRef) out.push(`${e.name}:   (v1:${f.fieldRef.fieldPath})`);
    else if (f.configMapKeyRef) out.push(`${e.name}:  <set to the key '${f.configMapKeyRef.key}' of config map '${f.configMapKeyRef.name}'>`);
    else if (f.secretKeyRef) out.push(`${e.name}:  <set to the key '${f.secretKeyRef.key}' in secret '${f.secretKeyRef.name}'>`);
    else if (f.resourceFieldRef) out.push(`${e.name}:  ${f.resourceFieldRef.resource}`);
  }
  for (const e of c.envFrom ?? []) {
    if (e.configMapRef) out.push(`ConfigMap ${e.configMapRef.name}${e.prefix ? ` (prefix ${e.prefix})` : ""}`);
    if (e.secretRef) out.push(`Secret ${e.secretRef.name}${e.prefix ? ` (prefix ${e.prefix})` : ""}`);
  }
  return out.length ? out : ["<none>"];
}

function resourceList(label: string, m: Record<string, string> | undefined): Field | undefined {
  const entries = Object.entries(m ?? {});
  if (entries.length === 0) return undefined;
  return [label, undefined, entries.sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, v] as Field)];
}

/** The fields of one container; `status` is its ContainerStatus when describing a pod. */
export function containerFields(c: any, status?: any): Field[] {
  const ports = (c.ports ?? []).map((p: any) => `${p.containerPort}/${p.protocol || "TCP"}${p.name ? ` (${p.name})` : ""}`);
  const fields: (Field | undefined)[] = [
    ["Container ID", status ? status.containerId || "" : undefined],
    ["Image", c.image],
    ["Image ID", status ? status.imageId || "" : undefined],
    [ports.length > 1 ? "Ports" : "Port", ports.length ? ports.join(", ") : "<none>"],
    ["Command", (c.command ?? []).length ? c.command : undefined],
    ["Args", (c.args ?? []).length ? c.args : undefined],
    status ? (stateFields("State", status.state) ?? ["State", "Waiting"]) : undefined,
    status ? stateFields("Last State", status.lastState) : undefined,
    ["Ready", status ? (status.ready ? "True" : "False") : undefined],
    ["Restart Count", status ? String(status.restartCount ?? 0) : undefined],
    resourceList("Limits", c.resources?.limits),
    resourceList("Requests", c.resources?.requests),
    ["Liveness", probeText(c.livenessProbe)],
    ["Readiness", probeText(c.readinessProbe)],
    ["Startup", probeText(c.startupProbe)],
    ["Environment", envLines(c)],
    ["Mounts", (c.volumeMounts ?? []).length ? c.volumeMounts.map((m: any) => `${m.mountPath} from ${m.name} (${m.readOnly ? "ro" : "rw"})`) : ["<none>"]],
  ];
  return fields.filter((f): f is Field => f !== undefined);
}

/** "Pod Template:" with its labels and containers (deployments, replica sets). */
export function podTemplateLines(t: any): string[] {
  if (!t) return [];
  const containers: Field[] = (t.spec?.containers ?? []).map((c: any) => [c.name, undefined, containerFields(c)] as Field);
  return renderFields([
    [
      "Pod Template",
      undefined,
      [
        ["Labels", mapLines(t.metadata?.labels)],
        ["Annotations", Object.keys(t.metadata?.annotations ?? {}).length ? mapLines(t.metadata.annotations, ": ") : undefined],
        ["Containers", containers.length ? undefined : "<none>", containers],
      ],
    ],
  ]);
}
