import { mkdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createFakeRuntime } from "../runtime/fake/fake.ts";
import type { ImageInfo } from "../runtime/runtime.ts";
import { createImageImporter } from "./image-import.ts";
import { cstatus, startHarness, type Harness } from "./testing.ts";

const log = pino({ level: "silent" });

/** A fake runtime whose importImage records the file and names the image after it ("local/<file>:1"). */
function importingRuntime(failing = new Set<string>()) {
  const runtime = createFakeRuntime();
  const imports: string[] = [];
  runtime.importImage = async (tar): Promise<ImageInfo[]> => {
    imports.push(tar);
    if (failing.has(tar)) throw new Error(`${tar}: not an OCI layout`);
    const base = tar.split("/").pop()!.replace(/\.tar$/, "");
    return [await runtime.pullImage(`local/${base}:1`)];
  };
  return { runtime, imports };
}

let dir: string | undefined;
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function tempDir(): Promise<string> {
  dir = join(tmpdir(), `skiff-import-${process.pid}-${Math.random().toString(36).slice(2)}`);
  await mkdir(join(dir, "images"), { recursive: true });
  return join(dir, "images");
}

describe("image import", () => {
  it("imports a directory's tarballs once, again when one changes, and retries a failed one", async () => {
    const images = await tempDir();
    const failing = new Set<string>();
    const { runtime, imports } = importingRuntime(failing);
    const importer = createImageImporter({ runtime, path: images, log });
    await writeFile(join(images, "a.tar"), "a");
    await writeFile(join(images, "b.tar"), "b");
    await writeFile(join(images, "notes.txt"), "not an image");
    expect((await importer.scan()).map((i) => i.names[0])).toEqual(["local/a:1", "local/b:1"]);
    expect(await importer.scan()).toEqual([]);

    await utimes(join(images, "b.tar"), new Date(), new Date(Date.now() + 5000));
    failing.add(join(images, "c.tar"));
    await writeFile(join(images, "c.tar"), "c");
    expect((await importer.scan()).map((i) => i.names[0])).toEqual(["local/b:1"]);
    failing.clear();
    expect((await importer.scan()).map((i) => i.names[0])).toEqual(["local/c:1"]);
    expect(imports.map((f) => f.split("/").pop())).toEqual(["a.tar", "b.tar", "b.tar", "c.tar", "c.tar"]);
  });

  it("imports a single tarball; a missing path is an error naming it", async () => {
    const images = await tempDir();
    const { runtime } = importingRuntime();
    await writeFile(join(images, "one.tar"), "1");
    expect((await createImageImporter({ runtime, path: join(images, "one.tar"), log }).scan()).map((i) => i.names[0])).toEqual(["local/one:1"]);
    await expect(createImageImporter({ runtime, path: join(images, "nope"), log }).scan()).rejects.toThrow(/^image import path .*nope: no such file or directory$/);
  });

  it("the agent imports before syncing pods, and a pod waiting with ErrImageNeverPull starts once its image arrives", async () => {
    const images = await tempDir();
    const { runtime } = importingRuntime();
    await writeFile(join(images, "first.tar"), "1");
    // A long start-retry back-off: only the import's nudge can start the second pod in time.
    h = await startHarness({ runtime, importImages: images, importRescanMs: 50, crashLoopBackoff: { initialMs: 60_000, maxMs: 60_000 } });
    await h.createPod("first", { containers: [{ name: "app", image: "local/first:1", imagePullPolicy: "Never" }] });
    await h.waitForPod("first", "Running", (p) => p.status?.phase === "Running");
    await h.createPod("later", { containers: [{ name: "app", image: "local/later:1", imagePullPolicy: "Never" }] });
    await h.waitForPod("later", "ErrImageNeverPull", (p) => cstatus(p)?.state?.waiting?.reason === "ErrImageNeverPull");
    await writeFile(join(images, "later.tar"), "2");
    await h.waitForPod("later", "Running", (p) => p.status?.phase === "Running", 5000);
  });
});
