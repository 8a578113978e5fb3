import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { prepareTerminationLog, terminationLogPath } from "./termination-message.ts";

describe("a container instance's termination-log file", () => {
  let root: string | undefined;
  afterEach(() => {
    if (root) rmSync(root, { recursive: true, force: true });
    root = undefined;
  });

  it("is made empty and writable by any user the container runs as, whatever the umask; made again, it is emptied", async () => {
    root = mkdtempSync(join(tmpdir(), "skiff-termlog-"));
    const path = terminationLogPath(root, "uid-1", "app", 0);
    const umask = process.umask(0o077);
    try {
      await prepareTerminationLog(path);
    } finally {
      process.umask(umask);
    }
    expect(statSync(path).mode & 0o777).toBe(0o666);
    expect(readFileSync(path, "utf8")).toBe("");
    writeFileSync(path, "left by an earlier run");
    await prepareTerminationLog(path);
    expect(readFileSync(path, "utf8")).toBe("");
  });
});
