// Issue 12's promise, end to end on a real node (containerd + runc + CNI) with the scheduler and
// the controller-manager (persistentvolume controller, local-path provisioner): a manifest written
// as public projects write them — a ConfigMap, a Secret, a local-path claim and a Deployment that
// mounts all three — applied with the real skiffctl; the pod serves the ConfigMap's page;
// `skiffctl get pvc,pv,sc` shows the claim Bound; `skiffctl edit configmap web` (the editor a sed
// script) changes the page and the running pod serves the new one (a running pod and its
// Deployment take an edit too); a file written to the claim
// is still there for the pod the Deployment makes after the first one is deleted.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { PersistentVolumeClaim } from "../../gen/skiff/v1alpha1/storage_pb.js";
import { spawnSkiffctl } from "../../internal/cli/testing.ts";
import { wget } from "../agent/cluster.ts";
import { IMAGE_V1, serving, startE2ECluster, waitFor, type E2ECluster } from "./cluster.ts";

/** Pods starting, volumes provisioned and probes passing get this long. */
const SLOW = 120_000;

let e: E2ECluster;

beforeAll(async () => {
  e = await startE2ECluster();
}, 180_000);

afterAll(async () => {
  await e?.stop();
}, 120_000);

const MANIFEST = `# web: a small site whose page lives in a ConfigMap and whose state lives on a volume.
apiVersion: v1
kind: ConfigMap
metadata:
  name: web
  labels:
    app.kubernetes.io/name: web
data:
  index.html: |
    <p>first edition</p>
---
apiVersion: v1
kind: Secret
metadata:
  name: web-credentials
  labels:
    app.kubernetes.io/name: web
type: Opaque
stringData:
  password: s3cret
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data-web
  labels:
    app.kubernetes.io/name: web
spec:
  accessModes:
    - ReadWriteOnce
  storageClassName: local-path
  resources:
    requests:
      storage: 1Gi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app.kubernetes.io/name: web
spec:
  replicas: 1
  strategy:
    type: Recreate
  selector:
    matchLabels:
      app.kubernetes.io/name: web
  template:
    metadata:
      labels:
        app.kubernetes.io/name: web
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: web
          image: ${IMAGE_V1}
          command:
            - sh
            - -c
            - |
              test -s /etc/web/credentials/password || { echo "no password" >&2; exit 1; }
              echo "$HOSTNAME" >> /var/lib/web/started-by
              exec httpd -f -p 8080 -h /www
          ports:
            - name: http
              containerPort: 8080
          readinessProbe:
            httpGet:
              path: /index.html
              port: http
            periodSeconds: 1
          volumeMounts:
            - name: site
              mountPath: /www
              readOnly: true
            - name: credentials
              mountPath: /etc/web/credentials
              readOnly: true
            - name: data
              mountPath: /var/lib/web
      volumes:
        - name: site
          configMap:
            name: web
        - name: credentials
          secret:
            secretName: web-credentials
            defaultMode: 0400
        - name: data
          persistentVolumeClaim:
            claimName: data-web
`;

/** The one serving pod of the Deployment (waits for it; on timeout says what the pods looked like). */
async function servingPod(not?: string): Promise<Pod> {
  let last = "";
  return waitFor(
    "a web pod serving",
    async () => {
      const pods = await e.pods("app.kubernetes.io/name=web");
      last = pods.map((p) => `${p.metadata!.name} ${p.status?.phase} ${p.status?.message ?? ""} ${JSON.stringify(p.status?.containerStatuses.map((c) => c.state), (_k, v) => (typeof v === "bigint" ? String(v) : v))}`).join("; ");
      return pods.find((p) => serving(p) && p.metadata!.name !== not);
    },
    SLOW,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\npods: ${last}`, { cause: err });
  });
}

it("applies a ConfigMap, a Secret, a claim and a Deployment; edit changes the running pod's file; the claim keeps its data", async () => {
  const file = e.manifest("web.yaml", MANIFEST);
  const applied = await e.skiffctl("apply", "-f", file);
  expect(applied).toEqual({
    code: 0,
    err: "",
    out: "configmap/web created\nsecret/web-credentials created\npersistentvolumeclaim/data-web created\ndeployment.apps/web created\n",
  });

  const first = await servingPod();
  expect(await wget(`http://${first.status!.podIp}:8080/index.html`)).toBe("<p>first edition</p>\n");

  // The claim, its provisioned volume and the default class, in Kubernetes' columns.
  const claim = await e.client<PersistentVolumeClaim>("PersistentVolumeClaim").get("default", "data-web");
  const volume = claim.spec!.volumeName;
  expect(volume).not.toBe("");
  const tables = await e.ok("get", "pvc,pv,sc");
  expect(tables).toMatch(/^NAME +STATUS +VOLUME +CAPACITY +ACCESS MODES +STORAGECLASS +AGE\n/);
  expect(tables).toMatch(new RegExp(`\\npersistentvolumeclaim/data-web +Bound +${volume} +1Gi +RWO +local-path +\\S+\\n`));
  expect(tables).toMatch(/\nNAME +CAPACITY +ACCESS MODES +RECLAIM POLICY +STATUS +CLAIM +STORAGECLASS +REASON +AGE\n/);
  expect(tables).toMatch(new RegExp(`\\npersistentvolume/${volume} +1Gi +RWO +Delete +Bound +default/data-web +local-path +\\S+\\n`));
  expect(tables).toMatch(/\nNAME +PROVISIONER +RECLAIMPOLICY +VOLUMEBINDINGMODE +ALLOWVOLUMEEXPANSION +AGE\n/);
  expect(tables).toMatch(/\nstorageclass\.storage\.k8s\.io\/local-path \(default\) +skiff\.io\/local-path +Delete +WaitForFirstConsumer +false +\S+\n/);

  // The user edits the page in their editor; the running pod serves the new one.
  const editor = join(e.dir, "editor.sh");
  e.manifest("editor.sh", `sed -i 's|<p>first edition</p>|<p>second edition</p>|' "$1"\n`);
  const edited = await spawnSkiffctl(e.node.cp.server.url, ["edit", "configmap", "web"], { KUBE_EDITOR: `sh ${editor}` }).done;
  expect(edited).toEqual({ code: 0, out: "configmap/web edited\n", err: "" });
  await waitFor(
    "the pod serving the edited page",
    async () => (await wget(`http://${first.status!.podIp}:8080/index.html`).catch(() => "")) === "<p>second edition</p>\n",
    90_000,
  );

  // Objects the controllers and the agent report on read back as they are printed: a running pod
  // and its Deployment take a new label through edit too.
  e.manifest("label.sh", `sed -i 's/^  labels:$/  labels:\\n    edited: "yes"/' "$1"\n`);
  for (const target of [`pod/${first.metadata!.name}`, "deployment/web"]) {
    const r = await spawnSkiffctl(e.node.cp.server.url, ["edit", target], { KUBE_EDITOR: `sh ${join(e.dir, "label.sh")}` }).done;
    expect(r).toEqual({ code: 0, out: `${target.replace("deployment/", "deployment.apps/")} edited\n`, err: "" });
  }
  expect((await e.client<Pod>("Pod").get("default", first.metadata!.name)).metadata!.labels.edited).toBe("yes");

  // The claim outlives the pod: the Deployment's next pod appends to the file the first one wrote.
  const node = e.node;
  const startedBy = join(node.rootDir, "storage", `${volume}_default_data-web`, "started-by");
  expect(readFileSync(startedBy, "utf8")).toBe(`${first.metadata!.name}\n`);
  await e.ok("delete", "pod", first.metadata!.name);
  const second = await servingPod(first.metadata!.name);
  expect(readFileSync(startedBy, "utf8")).toBe(`${first.metadata!.name}\n${second.metadata!.name}\n`);
  expect(await wget(`http://${second.status!.podIp}:8080/index.html`)).toBe("<p>second edition</p>\n");
}, 600_000);
