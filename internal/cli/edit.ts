// The loop of `skiffctl edit`, for every kind alike: the object as `get -o yaml|json` prints it
// goes into a private temp file, the user's editor opens it, and what they save is decoded like a
// manifest and written back with the resource version they were shown. A document that cannot be
// decoded, or that the apiserver refuses as invalid, reopens the editor with the reason at the top;
// saving it unchanged then gives up. A conflict (someone wrote in between) keeps the file so the
// user can apply it again once they have looked at the newer object.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ApiObject, Kind } from "../api/registry.ts";
import type { ResourceClient } from "../client/resource-client.ts";
import type { Env } from "./config.ts";
import { CliError } from "./errors.ts";
import { decodeDocument, identifyDocument, ManifestError } from "./manifest.ts";
import { ManifestReadError, parseManifestText } from "./manifest-source.ts";
import { formatObject, resourceRef } from "./printers/object.ts";

export type EditFormat = "yaml" | "json";

const HEADER = [
  "# Edit the object below and save to update it. Lines starting with '#' at the top are ignored;",
  "# saving an empty file, or quitting without changes, cancels the edit. If the change cannot be",
  "# saved, this file opens again with the reason here.",
  "#",
];

/** The command that opens a file for editing: $KUBE_EDITOR, $EDITOR, else vi (may carry arguments). */
export function editorCommand(env: Env): string {
  return env.KUBE_EDITOR?.trim() || env.EDITOR?.trim() || "vi";
}

/** Runs the editor on `file` with the terminal inherited; resolves when it exits. */
export function runEditor(command: string, file: string, env: Env): Promise<void> {
  return new Promise((resolve, reject) => {
    // Through sh so that "code --wait" or "sed -i s/a/b/" work; the file is "$1", never re-parsed.
    const child = spawn("/bin/sh", ["-c", `${command} "$1"`, "skiffctl-editor", file], { stdio: "inherit", env: { ...process.env, ...env } });
    child.on("error", (err) => reject(new CliError(`cannot start the editor "${command}": ${err.message}`)));
    child.on("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new CliError(`the editor "${command}" ${signal ? `was killed by ${signal}` : `exited with status ${code}`}; nothing was changed (set $KUBE_EDITOR or $EDITOR to choose another)`));
    });
  });
}

/** The file's text without the comment lines at its top (ours, or an error report). */
export function withoutLeadingComments(text: string): string {
  const lines = text.split("\n");
  let i = 0;
  while (i < lines.length && (lines[i].startsWith("#") || lines[i].trim() === "")) i++;
  return lines.slice(i).join("\n");
}

function errorHeader(problem: string): string[] {
  return ["# The change could not be saved:", ...problem.split("\n").map((l) => `#   ${l}`), "#"];
}

export interface EditRequest {
  client: ResourceClient;
  namespace: string;
  name: string;
  format: EditFormat;
  /** Opens the file for the user (runEditor in production). */
  edit(file: string): Promise<void>;
}

export type EditOutcome = { result: "edited"; object: ApiObject; message: string } | { result: "cancelled"; message: string };

/** Decodes what the user saved into the object to write, or says what is wrong with it. */
function decodeEdited(kind: Kind, body: string, file: string, current: ApiObject): ApiObject | string {
  let docs;
  try {
    docs = parseManifestText(body, file);
  } catch (err) {
    if (err instanceof ManifestReadError) return err.message;
    throw err;
  }
  if (docs.length !== 1) return `the file must hold exactly one object, not ${docs.length}`;
  try {
    const id = identifyDocument(docs[0]);
    const meta = current.metadata!;
    if (id.kind !== kind) return `kind cannot be changed (it is ${kind.kind}); create a new object with skiffctl apply instead`;
    if (id.name !== meta.name) return `metadata.name cannot be changed (it is "${meta.name}"); create a new object with skiffctl apply instead`;
    if (id.namespace && id.namespace !== meta.namespace) return `metadata.namespace cannot be changed (it is "${meta.namespace}")`;
    const { object } = decodeDocument(docs[0]);
    object.metadata!.namespace = meta.namespace;
    // The version the user was shown: a write in between is a conflict, not silently overwritten.
    object.metadata!.resourceVersion = meta.resourceVersion;
    return object;
  } catch (err) {
    if (err instanceof ManifestError) return err.message.replace(/^[^:]*: document \d+( \([^)]*\))?: /, "");
    throw err;
  }
}

/** Runs the edit loop for one object. Throws CliError for a failure (the file is kept where useful). */
export async function editObject(req: EditRequest): Promise<EditOutcome> {
  const { client, namespace, name, format } = req;
  const kind = client.kind;
  const current = await client.get(namespace, name);
  const dir = await mkdtemp(join(tmpdir(), "skiffctl-edit-"));
  const file = join(dir, `${kind.singular}-${name}.${format}`);
  let shown = formatObject(kind, current, format);
  let keep = false;
  try {
    await writeFile(file, [...HEADER, shown].join("\n"), { mode: 0o600 });
    let afterError: string | undefined;
    for (;;) {
      await req.edit(file);
      const body = withoutLeadingComments(await readFile(file, "utf8"));
      if (body.trim() === "") return { result: "cancelled", message: "Edit cancelled, saved file was empty." };
      if (body === shown) {
        if (afterError === undefined) return { result: "cancelled", message: "Edit cancelled, no changes made." };
        keep = true;
        throw new CliError(`${afterError}\nEdit cancelled, no valid changes were saved; your version is in ${file}`);
      }
      const decoded = decodeEdited(kind, body, file, current);
      let problem: string;
      if (typeof decoded === "string") {
        problem = decoded;
      } else {
        try {
          const object = await client.update(decoded);
          return { result: "edited", object, message: `${resourceRef(kind)}/${name} edited` };
        } catch (err) {
          if (!(err instanceof ConnectError)) throw err;
          if (err.code !== Code.InvalidArgument) {
            keep = true;
            const why = err.code === Code.Aborted ? `${kind.singular} "${name}" was changed by someone else since it was opened: ${err.rawMessage}` : err.rawMessage;
            throw new CliError(`${why}\nYour version is in ${file}: look at the current object, then apply it with skiffctl apply -f (or edit again)`);
          }
          problem = err.rawMessage;
        }
      }
      afterError = problem;
      shown = body;
      await writeFile(file, [...errorHeader(problem), body].join("\n"), { mode: 0o600 });
    }
  } finally {
    if (!keep) await rm(dir, { recursive: true, force: true });
  }
}
