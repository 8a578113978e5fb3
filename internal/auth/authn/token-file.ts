// Static bearer tokens from a file (`--token-auth-file`), Kubernetes' CSV format, one per line:
//
//   token,user,uid,"group1,group2"
//
// The groups column is optional. Lines starting with # and empty lines are skipped.
import { readFileSync } from "node:fs";
import type { UserInfo } from "../types.ts";
import type { TokenAuthenticator } from "./token.ts";

/** Parses the file's text; throws naming the line of the first malformed entry. */
export function parseTokenFile(text: string, source = "token file"): Map<string, UserInfo> {
  const tokens = new Map<string, UserInfo>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const cols = splitCsv(line);
    const where = `${source} line ${i + 1}`;
    if (cols === undefined) throw new Error(`${where}: unbalanced quotes`);
    if (cols.length < 3) throw new Error(`${where}: expected token,user,uid[,"group1,group2"], got ${cols.length} column(s)`);
    const [token, name, uid, groups = ""] = cols;
    if (token === "" || name === "") throw new Error(`${where}: the token and the user name must not be empty`);
    if (tokens.has(token)) throw new Error(`${where}: the same token appears twice`);
    tokens.set(token, {
      name,
      uid: uid || undefined,
      groups: groups.split(",").map((g) => g.trim()).filter(Boolean),
      authenticatedBy: "token-file",
    });
  });
  return tokens;
}

export function createTokenFileAuthenticator(path: string): TokenAuthenticator {
  const tokens = parseTokenFile(readFileSync(path, "utf8"), path);
  return { authenticate: (token) => tokens.get(token) };
}

/** Tokens given in code (tests, embedding): like a token file's. */
export function createStaticTokenAuthenticator(tokens: Map<string, UserInfo>): TokenAuthenticator {
  const withSource = new Map([...tokens].map(([t, u]) => [t, { authenticatedBy: "token-file" as const, ...u }]));
  return { authenticate: (token) => withSource.get(token) };
}

/** One CSV record: fields separated by commas, a field in double quotes may hold commas ("" is a quote). */
function splitCsv(line: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    let field = "";
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) return undefined;
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += line[i++];
      }
    } else {
      while (i < line.length && line[i] !== ",") field += line[i++];
    }
    out.push(field.trim());
    if (i >= line.length) return out;
    if (line[i] !== ",") return undefined;
    i++;
  }
}
