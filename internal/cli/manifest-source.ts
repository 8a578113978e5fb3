// Turns `-f` arguments (files, directories, "-" for stdin) into raw documents: YAML or JSON,
// several YAML documents per file (---), and the items of a `kind: List` each as a document.
// Decoding a document into an API object is manifest.ts's job.
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import YAML from "yaml";

export interface RawDocument {
  /** The file as the user named it, or "<stdin>". */
  source: string;
  /** 1-based position of the document in its source. */
  index: number;
  /** 1-based position in a List document's items. */
  item?: number;
  value: unknown;
}

/** A manifest that cannot be read or parsed at all. */
export class ManifestReadError extends Error {
  override name = "ManifestReadError";
}

const MANIFEST_EXT = /\.(ya?ml|json)$/i;

// YAML 1.1, as Kubernetes reads it (0644 is octal, yes/no are booleans), except that timestamps
// stay strings: a label value that looks like a date must not turn into a Date.
const YAML_OPTIONS = {
  version: "1.1" as const,
  prettyErrors: true,
  customTags: (tags: YAML.Tags) => tags.filter((t) => typeof t === "string" || t.tag !== "tag:yaml.org,2002:timestamp"),
};

function firstLine(message: string): string {
  return message.split("\n")[0].replace(/:\s*$/, "");
}

/** Parses one file's text (YAML, JSON, several documents) into documents, expanding Lists. */
export function parseManifestText(text: string, source: string): RawDocument[] {
  const docs = YAML.parseAllDocuments(text, YAML_OPTIONS);
  const out: RawDocument[] = [];
  let index = 0;
  for (const doc of Array.isArray(docs) ? docs : []) {
    if (doc.errors.length > 0) {
      throw new ManifestReadError(`${source}: YAML syntax error: ${firstLine(doc.errors[0].message)}`);
    }
    if (doc.contents === null) continue; // an empty document, e.g. after a trailing ---
    index++;
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue;
    if (isList(value)) {
      const items = (value as { items?: unknown }).items ?? [];
      if (!Array.isArray(items)) throw new ManifestReadError(`${source}: document ${index}: List items must be a list`);
      items.forEach((item, i) => out.push({ source, index, item: i + 1, value: item }));
      continue;
    }
    out.push({ source, index, value });
  }
  return out;
}

function isList(v: unknown): boolean {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const kind = (v as { kind?: unknown }).kind;
  return typeof kind === "string" && (kind === "List" || (kind.endsWith("List") && "items" in v));
}

/** The files a path stands for: itself, or a directory's .yaml/.yml/.json files, sorted. */
async function expandPath(path: string): Promise<string[]> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ManifestReadError(code === "ENOENT" ? `${path}: no such file or directory` : `${path}: ${(err as Error).message}`);
  }
  if (!st.isDirectory()) return [path];
  const names = (await readdir(path)).filter((n) => MANIFEST_EXT.test(n)).sort();
  if (names.length === 0) throw new ManifestReadError(`${path}: no .yaml, .yml or .json files in this directory`);
  return names.map((n) => join(path, n));
}

export interface ReadOptions {
  /** Reads all of stdin; injectable for tests. */
  readStdin?: () => Promise<string>;
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** Reads every document of every `-f` argument, in order. */
export async function readManifests(paths: string[], opts: ReadOptions = {}): Promise<RawDocument[]> {
  if (paths.length === 0) throw new ManifestReadError("no manifest given: use -f FILE, -f DIR or -f -");
  const out: RawDocument[] = [];
  for (const p of paths) {
    if (p === "-") {
      out.push(...parseManifestText(await (opts.readStdin ?? readAllStdin)(), "<stdin>"));
      continue;
    }
    for (const file of await expandPath(p)) {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (err) {
        throw new ManifestReadError(`${file}: ${(err as Error).message}`);
      }
      out.push(...parseManifestText(text, file));
    }
  }
  return out;
}
