// Test support: every message type in Skiff's generated code (gen/: Skiff's API, etcd's and
// containerd's), plus protobuf-es' well-known types, found through the generated file descriptors.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { DescFile, DescMessage } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import * as wkt from "@bufbuild/protobuf/wkt";

const GEN = fileURLToPath(new URL("../../../gen/", import.meta.url));

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : e.name.endsWith("_pb.js") ? [join(dir, e.name)] : []);
}

function isFile(v: unknown): v is DescFile {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "file";
}

export async function allMessageTypes(): Promise<{ skiff: DescMessage[]; all: DescMessage[] }> {
  const byName = new Map<string, DescMessage>();
  const files: DescFile[] = [];
  for (const path of filesUnder(GEN)) files.push(...Object.values(await import(path)).filter(isFile));
  files.push(...Object.values(wkt).filter(isFile));
  for (const file of files) {
    // descriptor.proto (proto2, required fields) is protobuf's own schema, not a message Skiff sends.
    for (const t of nestedTypes(file)) if (t.kind === "message" && t.file.name !== "google/protobuf/descriptor") byName.set(t.typeName, t);
  }
  const all = [...byName.values()].sort((a, b) => a.typeName.localeCompare(b.typeName));
  return { skiff: all.filter((d) => d.typeName.startsWith("skiff.")), all };
}
