// The layout of `describe`: labelled fields whose values line up, nested sections indented by
// two, multi-line values (labels, annotations) continued under the value column, and small
// tables (conditions, events).
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { age, columnWidths, formatRow } from "./table.ts";

/**
 * A field: [label, value, children]. A field without value or children is left out; children
 * (a nested block) follow the field's line, indented by two.
 */
export type Field = [string, string | string[] | undefined, Field[]?];

/** Renders fields at an indent; labels within one block are padded to the same width. */
export function renderFields(fields: Field[], indent = 0): string[] {
  const pad = " ".repeat(indent);
  const shown = fields.filter(([, v, children]) => v !== undefined || (children && children.length > 0));
  const width = Math.max(0, ...shown.filter(([, v]) => v !== undefined).map(([l]) => l.length + 1));
  const out: string[] = [];
  for (const [label, value, children] of shown) {
    if (value === undefined) {
      out.push(`${pad}${label}:`);
    } else {
      const lines = Array.isArray(value) ? value : value.split("\n");
      const head = `${pad}${`${label}:`.padEnd(width)}  `;
      if (lines.length === 0 || (lines.length === 1 && lines[0] === "")) out.push(head.trimEnd());
      else {
        out.push(`${head}${lines[0]}`);
        for (const l of lines.slice(1)) out.push(`${" ".repeat(head.length)}${l}`);
      }
    }
    if (children) out.push(...renderFields(children, indent + 2));
  }
  return out;
}

/** A table under a section title, with dashes under the headers, indented by two. */
export function renderTable(title: string, header: string[], rows: string[][], emptyText = "<none>"): string[] {
  if (rows.length === 0) return [`${title}:  ${emptyText}`];
  const widths = columnWidths(header, rows);
  const dashes = header.map((h) => "-".repeat(h.length));
  return [`${title}:`, ...[header, dashes, ...rows].map((r) => `  ${formatRow(r, widths)}`)];
}

/** "k=v" lines, sorted, or "<none>". */
export function mapLines(m: Record<string, string> | undefined, sep = "="): string[] {
  const entries = Object.entries(m ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? ["<none>"] : entries.map(([k, v]) => `${k}${sep}${v}`);
}

/** RFC 1123-ish time as kubectl describe shows it, e.g. "Mon, 02 Jan 2006 15:04:05 +0000". */
export function formatTime(ts: Timestamp | undefined): string | undefined {
  if (!ts) return undefined;
  return timestampDate(ts).toUTCString().replace("GMT", "+0000");
}

export interface EventLike {
  type: string;
  reason: string;
  message: string;
  count: number;
  source?: { component: string; host: string };
  reportingComponent: string;
  firstTimestamp?: Timestamp;
  lastTimestamp?: Timestamp;
  metadata?: { creationTimestamp?: Timestamp };
}

/** The "Events:" section: newest last, like kubectl. */
export function renderEvents(events: EventLike[], now: number = Date.now()): string[] {
  const when = (e: EventLike) => e.lastTimestamp ?? e.firstTimestamp ?? e.metadata?.creationTimestamp;
  const sorted = [...events].sort((a, b) => {
    const ta = when(a) ? timestampDate(when(a)!).getTime() : 0;
    const tb = when(b) ? timestampDate(when(b)!).getTime() : 0;
    return ta - tb;
  });
  const rows = sorted.map((e) => {
    let a = age(when(e), now);
    if (e.count > 1 && e.firstTimestamp) a = `${a} (x${e.count} over ${age(e.firstTimestamp, now)})`;
    const from = e.source?.component || e.reportingComponent || "";
    return [e.type || "Normal", e.reason, a, from, e.message];
  });
  return renderTable("Events", ["Type", "Reason", "Age", "From", "Message"], rows);
}
