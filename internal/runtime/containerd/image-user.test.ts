import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeTempDir, removeTempDir } from "../../../test/harness/tmp.ts";
import { layerDirs, resolveImageUser } from "./image-user.ts";

const root = makeTempDir("skiff-image-user-");
afterAll(() => removeTempDir(root));

function layer(name: string, files: Record<string, string>): string {
  const dir = join(root, name);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

const base = layer("base", {
  "etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
  "etc/group": "root:x:0:\nstaff:x:50:\napp:x:1001:\n",
});
const top = layer("top", { "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nweb:x:33:33::/:/bin/false\n" });

describe("resolveImageUser", () => {
  it("resolves names through the topmost layer's files", () => {
    expect(resolveImageUser("app", [base])).toBe("1000:1001");
    expect(resolveImageUser("app:staff", [base])).toBe("1000:50");
    expect(resolveImageUser("web", [top, base])).toBe("33:33");
    expect(() => resolveImageUser("app", [top, base])).toThrow(/unable to find user app/);
    expect(() => resolveImageUser("app:wheel", [base])).toThrow(/unable to find group wheel/);
  });

  it("gives a numeric uid its primary gid from /etc/passwd (else 0); runAsUser replaces the USER", () => {
    expect(resolveImageUser("1000", [base])).toBe("1000:1001");
    expect(resolveImageUser("", [base])).toBe("0:0");
    expect(resolveImageUser("4242", [base])).toBe("4242:0");
    expect(resolveImageUser("7:8", [])).toBe("7:8");
    expect(resolveImageUser("web:staff", [base], 1000)).toBe("1000:1001");
  });

  it("reads the directories of an overlay or bind mount, topmost first", () => {
    expect(layerDirs([{ type: "overlay", source: "overlay", options: ["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l2:/l1"] }])).toEqual(["/u", "/l2", "/l1"]);
    expect(layerDirs([{ type: "bind", source: "/snap/1/fs", options: ["rbind", "ro"] }])).toEqual(["/snap/1/fs"]);
  });
});
