// The `get` table for a kind: NAMESPACE (with -A), NAME ("kind/name" when several kinds are
// listed), the kind's columns, and the wide ones with -o wide. A streaming printer keeps the
// column widths of what it printed so that rows arriving later (get -w) line up.
import type { ApiObject, Kind } from "../../api/registry.ts";
import { columnsFor } from "./columns.ts";
import { resourceRef } from "./object.ts";
import { columnWidths, formatRow } from "./table.ts";

export interface TableOptions {
  wide?: boolean;
  /** Add a NAMESPACE column (namespaced kinds only). */
  allNamespaces?: boolean;
  /** Show names as kind/name (several kinds in one get). */
  withKind?: boolean;
  now?: number;
}

export function tableHeader(kind: Kind, opts: TableOptions): string[] {
  const cols = columnsFor(kind.kind);
  return [
    ...(opts.allNamespaces && kind.namespaced ? ["NAMESPACE"] : []),
    ...(cols.noName ? [] : ["NAME"]),
    ...cols.header,
    ...(opts.wide ? (cols.wideHeader ?? []) : []),
  ];
}

export function tableRow(kind: Kind, obj: ApiObject, opts: TableOptions): string[] {
  const cols = columnsFor(kind.kind);
  const name = cols.name?.(obj) ?? obj.metadata?.name ?? "";
  return [
    ...(opts.allNamespaces && kind.namespaced ? [obj.metadata?.namespace ?? ""] : []),
    ...(cols.noName ? [] : [opts.withKind ? `${resourceRef(kind)}/${name}` : name]),
    ...cols.row(obj, opts.now ?? Date.now()),
    ...(opts.wide ? (cols.wideRow?.(obj) ?? []) : []),
  ];
}

/** A whole table, or "" when there are no objects. */
export function formatObjectsTable(kind: Kind, objs: ApiObject[], opts: TableOptions): string {
  if (objs.length === 0) return "";
  const header = tableHeader(kind, opts);
  const rows = objs.map((o) => tableRow(kind, o, opts));
  const widths = columnWidths(header, rows);
  return [header, ...rows].map((r) => `${formatRow(r, widths)}\n`).join("");
}

/** Prints rows as they come (get -w): the header with the first batch, widths kept and grown. */
export function createStreamingTable(kind: Kind, opts: TableOptions, write: (text: string) => void) {
  const header = tableHeader(kind, opts);
  let widths: number[] | undefined;
  return {
    print(objs: ApiObject[]): void {
      if (objs.length === 0) return;
      const rows = objs.map((o) => tableRow(kind, o, { ...opts, now: Date.now() }));
      const fresh = columnWidths(header, rows);
      let text = "";
      if (!widths) {
        widths = fresh;
        text += `${formatRow(header, widths)}\n`;
      } else {
        widths = widths.map((w, i) => Math.max(w, fresh[i]));
      }
      for (const r of rows) text += `${formatRow(r, widths)}\n`;
      write(text);
    },
  };
}
