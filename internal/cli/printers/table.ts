// Plain-text tables as kubectl prints them: upper-case headers, left-aligned columns three
// spaces apart, no borders; and the short ages in their AGE column.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

const GAP = "   ";

/** Column widths that fit the header and every row. */
export function columnWidths(header: string[], rows: string[][]): number[] {
  return header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
}

/** One line of a table; the last column is not padded. */
export function formatRow(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? c.length))).join(GAP);
}

export function formatTable(header: string[], rows: string[][]): string {
  const widths = columnWidths(header, rows);
  return [header, ...rows].map((r) => formatRow(r, widths)).join("\n");
}

/**
 * A duration in the short form of an AGE column: the two most useful units while they matter,
 * then one: 45s, 3m20s, 42m, 5h12m, 20h, 3d4h, 40d, 2y30d, 9y.
 */
export function shortDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const d = Math.floor(h / 24);
  const y = Math.floor(d / 365);
  const two = (big: number, bigUnit: string, small: number, smallUnit: string) =>
    small === 0 ? `${big}${bigUnit}` : `${big}${bigUnit}${small}${smallUnit}`;
  if (s < 120) return `${s}s`;
  if (m < 10) return two(m, "m", s % 60, "s");
  if (h < 3) return `${m}m`;
  if (h < 8) return two(h, "h", m % 60, "m");
  if (h < 48) return `${h}h`;
  if (d < 8) return two(d, "d", h % 24, "h");
  if (y < 2) return `${d}d`;
  if (y < 8) return two(y, "y", d % 365, "d");
  return `${y}y`;
}

/** The age of a timestamp ("<unknown>" when unset). */
export function age(ts: Timestamp | undefined, now: number = Date.now()): string {
  if (!ts) return "<unknown>";
  return shortDuration(now - timestampDate(ts).getTime());
}

/** "a=1,b=2" or "<none>". */
export function formatLabels(labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? "<none>" : entries.map(([k, v]) => `${k}=${v}`).join(",");
}
