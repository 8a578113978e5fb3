// skiffctl edit against an in-process apiserver, with $EDITOR a small shell script standing in
// for the user: changed, unchanged, invalid then fixed, refused identity changes, a conflict.
import { create } from "@bufbuild/protobuf";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DeploymentSchema, DeploymentStatusSchema, type Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import { startCliTestApi, type CliTestApi } from "./testing.ts";

let api: CliTestApi;
let dir: string;
let n = 0;
let name: string;
beforeAll(async () => {
  api = await startCliTestApi();
  dir = await mkdtemp(join(tmpdir(), "skiff-cli-edit-"));
});
afterAll(async () => {
  await api?.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  name = `web${++n}`;
  await api.client("ConfigMap").create({ metadata: { name, namespace: "default" }, data: { greeting: "hello" } } as never);
});

const cm = () => api.client("ConfigMap").get("default", name);

/** An editor script in the test's directory; $1 is the file to edit. */
async function editor(script: string): Promise<Record<string, string>> {
  const path = join(dir, `editor-${n}-${Math.random().toString(36).slice(2)}.sh`);
  await writeFile(path, `set -e\nf="$1"\n${script}\n`);
  return { EDITOR: `sh ${path}` };
}

describe("skiffctl edit", () => {
  it("writes back a changed object and says so", async () => {
    const r = await api.run(["edit", `configmap/${name}`], await editor(`sed -i 's/greeting: hello/greeting: bonjour/' "$f"`));
    expect(r).toEqual({ code: 0, out: `configmap/${name} edited\n`, err: "" });
    expect((await cm()).data).toEqual({ greeting: "bonjour" });
  });

  it("shows the object as get -o yaml prints it, under a comment saying how to cancel, in a private file", async () => {
    const copy = join(dir, `seen-${n}`);
    const r = await api.run(["edit", "configmap", name], await editor(`cp "$f" ${copy}; stat -c %a "$f" > ${copy}.mode`));
    expect(r).toEqual({ code: 0, out: "", err: "Edit cancelled, no changes made.\n" });
    const seen = await readFile(copy, "utf8");
    const got = await api.run(["get", `configmap/${name}`, "-o", "yaml"]);
    expect(seen.startsWith("# ")).toBe(true);
    expect(seen).toMatch(/cancels the edit/);
    expect(seen.endsWith(got.out)).toBe(true);
    expect((await readFile(`${copy}.mode`, "utf8")).trim()).toBe("600");
  });

  it("edits in JSON with -o json", async () => {
    const r = await api.run(["edit", `cm/${name}`, "-o", "json"], await editor(`sed -i 's/"greeting": "hello"/"greeting": "hola"/' "$f"`));
    expect(r).toMatchObject({ code: 0, out: `configmap/${name} edited\n` });
    expect((await cm()).data).toEqual({ greeting: "hola" });
  });

  it("leaves the object alone when the file is saved unchanged or empty", async () => {
    const before = await cm();
    expect(await api.run(["edit", `configmap/${name}`], { EDITOR: "true" })).toEqual({ code: 0, out: "", err: "Edit cancelled, no changes made.\n" });
    expect(await api.run(["edit", `configmap/${name}`], await editor(`: > "$f"`))).toEqual({ code: 0, out: "", err: "Edit cancelled, saved file was empty.\n" });
    expect((await cm()).metadata!.resourceVersion).toBe(before.metadata!.resourceVersion);
  });

  it("reopens the editor with the error at the top after an invalid change, and saves the fixed version", async () => {
    const second = join(dir, `second-${n}`);
    // First save: a field that does not exist; second save: the key the apiserver refuses; third: fixed.
    const script = await editor(`
      round=$(cat ${second}.round 2>/dev/null || echo 0); echo $((round + 1)) > ${second}.round
      case $round in
        0) sed -i 's/^data:/dta:/' "$f" ;;
        1) cp "$f" ${second}; sed -i 's/^dta:/data:/; s/greeting: hello/bad key!: x/' "$f" ;;
        2) cp "$f" ${second}.third; sed -i 's/bad key!: x/greeting: fixed/' "$f" ;;
      esac`);
    const r = await api.run(["edit", `configmap/${name}`], script);
    expect(r).toEqual({ code: 0, out: `configmap/${name} edited\n`, err: "" });
    expect(await readFile(second, "utf8")).toMatch(/^# The change could not be saved:\n# +unknown field dta \(did you mean data\?\)\n#\napiVersion: v1\n/);
    expect(await readFile(`${second}.third`, "utf8")).toMatch(/^# The change could not be saved:\n# +.*bad key!/);
    expect((await cm()).data).toEqual({ greeting: "fixed" });
  });

  it("gives up, keeping the file, when the invalid version is saved again unchanged", async () => {
    const r = await api.run(["edit", `configmap/${name}`], await editor(`sed -i 's/^data:/dta:/' "$f"`));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^Error: unknown field dta \(did you mean data\?\)\nError: Edit cancelled, no valid changes were saved; your version is in (\S+)\n$/);
    const kept = /your version is in (\S+)/.exec(r.err)![1];
    expect(await readFile(kept, "utf8")).toMatch(/^dta:/m);
    await rm(join(kept, ".."), { recursive: true });
    expect((await cm()).data).toEqual({ greeting: "hello" });
  });

  it("refuses a change of name or kind", async () => {
    const renamed = await api.run(["edit", `configmap/${name}`], await editor(`sed -i 's/^  name: ${name}$/  name: other/' "$f"`));
    expect(renamed.code).toBe(1);
    expect(renamed.err).toMatch(new RegExp(`^Error: metadata.name cannot be changed \\(it is "${name}"\\)`));
    const rekinded = await api.run(["edit", `configmap/${name}`], await editor(`sed -i 's/^kind: ConfigMap$/kind: Secret/' "$f"`));
    expect(rekinded.err).toMatch(/^Error: kind cannot be changed \(it is ConfigMap\)/);
    for (const e of [renamed.err, rekinded.err]) await rm(join(/your version is in (\S+)/.exec(e)![1], ".."), { recursive: true });
    await expect(api.client("ConfigMap").get("default", "other")).rejects.toThrow(/not found/);
  });

  it("reports a conflict when the object changed while it was open, and keeps the edited file", async () => {
    const opened = join(dir, `opened-${n}`);
    const go = join(dir, `go-${n}`);
    const running = api.start(["edit", `configmap/${name}`], await editor(`sed -i 's/greeting: hello/greeting: mine/' "$f"; touch ${opened}; while [ ! -e ${go} ]; do sleep 0.1; done`));
    await waitForFile(opened);
    const theirs = await cm();
    theirs.data = { greeting: "theirs" };
    await api.client("ConfigMap").update(theirs);
    await writeFile(go, "");
    const r = await running.done;
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`^Error: configmap "${name}" was changed by someone else since it was opened: .*\\nError: Your version is in (\\S+): `));
    const kept = /Your version is in (\S+):/.exec(r.err)![1];
    expect(await readFile(kept, "utf8")).toMatch(/greeting: mine/);
    await rm(join(kept, ".."), { recursive: true });
    expect((await cm()).data).toEqual({ greeting: "theirs" });
  });

  it("works for every kind alike: a Deployment with its status, a cluster-scoped Namespace", async () => {
    const deployments = api.client<Deployment>("Deployment");
    const template = { metadata: { labels: { app: name } }, spec: { containers: [{ name: "c", image: "busybox:1" }] } };
    const made = await deployments.create(create(DeploymentSchema, { metadata: { name, namespace: "default" }, spec: { replicas: 1, selector: { matchLabels: { app: name } }, template } }));
    // As the controller would report it: the status is printed, and must read back.
    made.status = create(DeploymentStatusSchema, { observedGeneration: 1n, replicas: 1, readyReplicas: 1, conditions: [{ type: "Available", status: "True", reason: "MinimumReplicasAvailable" }] });
    await deployments.updateStatus(made);
    const r = await api.run(["edit", "deploy", name], await editor(`sed -i 's/^  replicas: 1$/  replicas: 3/' "$f"`));
    expect(r).toEqual({ code: 0, out: `deployment.apps/${name} edited\n`, err: "" });
    const after = await deployments.get("default", name);
    expect(after.spec!.replicas).toBe(3);
    expect(after.status!.readyReplicas).toBe(1);

    await api.client("Namespace").create({ metadata: { name } } as never);
    const ns = await api.run(["edit", `ns/${name}`], await editor(`sed -i 's/^  name: ${name}$/  name: ${name}\\n  labels: {team: blue}/' "$f"`));
    expect(ns).toEqual({ code: 0, out: `namespace/${name} edited\n`, err: "" });
    expect((await api.client("Namespace").get("", name)).metadata!.labels).toEqual({ team: "blue" });
  });

  it("names what is wrong with the arguments or the editor", async () => {
    expect((await api.run(["edit"])).err).toMatch(/^Error: which object\? skiffctl edit TYPE\/NAME/);
    expect((await api.run(["edit", "configmap"])).err).toMatch(/^Error: edit takes exactly one object/);
    expect((await api.run(["edit", `configmap/${name}`, "-o", "wide"])).err).toMatch(/^Error: unknown output format "wide": use yaml or json/);
    expect((await api.run(["edit", "configmap/absent"], { EDITOR: "true" })).err).toBe('Error: configmap "absent" not found\n');
    const failing = await api.run(["edit", `configmap/${name}`], { EDITOR: "false" });
    expect(failing).toMatchObject({ code: 1, err: 'Error: the editor "false" exited with status 1; nothing was changed (set $KUBE_EDITOR or $EDITOR to choose another)\n' });
  });
});

async function waitForFile(path: string): Promise<void> {
  for (let i = 0; i < 600 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 100));
  if (!existsSync(path)) throw new Error(`the editor never opened ${path}`);
}
