import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { decodeDocument, decodeDocuments, identifyDocument, namespacesFirst, targetNamespace } from "./manifest.ts";
import { parseManifestText, readManifests } from "./manifest-source.ts";

// Real-world manifests, as they appear in Kubernetes docs and `kubectl create … --dry-run -o yaml`.
const DEPLOYMENT = `
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: nginx
  name: nginx-deployment
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: nginx
    spec:
      containers:
      - image: nginx:1.14.2
        name: nginx
        ports:
        - containerPort: 80
        resources:
          requests:
            cpu: 250m
            memory: 64Mi
          limits:
            cpu: 1
            memory: 128974848
        livenessProbe:
          httpGet:
            path: /healthz
            port: 80
          initialDelaySeconds: 3
        readinessProbe:
          tcpSocket:
            port: http
        env:
        - name: POD_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
        volumeMounts:
        - name: conf
          mountPath: /etc/nginx/conf.d
      volumes:
      - name: conf
        configMap:
          name: nginx-conf
          defaultMode: 0644
status: {}
`;

const SERVICE = `
apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: 9376
      nodePort: 30007
`;

const CONFIGMAP = `
apiVersion: v1
kind: ConfigMap
metadata:
  name: game-demo
data:
  player_initial_lives: "3"
  ui_properties_file_name: "user-interface.properties"
  game.properties: |
    enemy.types=aliens,monsters
    player.maximum-lives=5
`;

const POD = `
apiVersion: v1
kind: Pod
metadata:
  name: busybox
  namespace: tools
spec:
  restartPolicy: Never
  containers:
  - name: busybox
    image: busybox:1.36
    command: ["sh", "-c", "echo hello; sleep 3600"]
    securityContext:
      runAsUser: 1000
      allowPrivilegeEscalation: false
  nodeSelector:
    kubernetes.io/os: linux
  tolerations:
  - key: node.kubernetes.io/not-ready
    operator: Exists
    effect: NoExecute
    tolerationSeconds: 300
`;

/** The decoded objects; any failure thrown, one line each. */
function decode(text: string, source = "m.yaml") {
  const { objects, failures } = decodeDocuments(parseManifestText(text, source));
  if (failures.length > 0) throw new Error(failures.join("\n"));
  return objects;
}

describe("decoding Kubernetes manifests", () => {
  it("decodes a Deployment with int-or-string, quantities, probes and YAML 1.1 octal modes", () => {
    const [d] = decode(DEPLOYMENT);
    const o = d.object as any;
    expect(d.kind.kind).toBe("Deployment");
    expect(d.where).toBe("m.yaml: document 1 (Deployment nginx-deployment)");
    expect(o.spec.replicas).toBe(3);
    expect(o.spec.strategy.rollingUpdate).toMatchObject({ maxSurge: "1", maxUnavailable: "0" });
    const c = o.spec.template.spec.containers[0];
    expect(c.resources.requests).toEqual({ cpu: "250m", memory: "64Mi" });
    expect(c.resources.limits).toEqual({ cpu: "1", memory: "128974848" });
    expect(c.livenessProbe.httpGet.port).toBe("80");
    expect(c.readinessProbe.tcpSocket.port).toBe("http");
    expect(c.env[0].valueFrom.fieldRef.fieldPath).toBe("status.podIP");
    expect(o.spec.template.spec.volumes[0].configMap.defaultMode).toBe(0o644);
    expect(o.metadata.creationTimestamp).toBeUndefined();
  });

  it("decodes a Service, mapping clusterIP and targetPort", () => {
    const s = decode(SERVICE)[0].object as any;
    expect(s.spec.clusterIp).toBe("10.96.0.10");
    expect(s.spec.ports[0]).toMatchObject({ name: "http", port: 80, targetPort: "9376", nodePort: 30007 });
    expect(s.spec.selector).toEqual({ "app.kubernetes.io/name": "MyApp" });
  });

  it("decodes a ConfigMap and a Pod", () => {
    const cm = decode(CONFIGMAP)[0].object as any;
    expect(cm.data["game.properties"]).toBe("enemy.types=aliens,monsters\nplayer.maximum-lives=5\n");
    expect(cm.data.player_initial_lives).toBe("3");
    const pod = decode(POD)[0].object as any;
    expect(pod.metadata.namespace).toBe("tools");
    expect(pod.spec.containers[0].securityContext.runAsUser).toBe(1000n);
    expect(pod.spec.tolerations[0].tolerationSeconds).toBe(300n);
  });

  it("decodes downwardAPI and projected volumes and subPathExpr as the Kubernetes docs write them", () => {
    const pod = decode(`
apiVersion: v1
kind: Pod
metadata:
  name: kubernetes-downwardapi-volume-example
  labels:
    zone: us-est-coast
spec:
  containers:
  - name: client-container
    image: registry.k8s.io/busybox:1.27.2
    command: ["sh", "-c", "sleep 3600"]
    env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    volumeMounts:
    - name: podinfo
      mountPath: /etc/podinfo
    - name: all-in-one
      mountPath: /projected-volume
      subPathExpr: $(POD_NAME)
  volumes:
  - name: podinfo
    downwardAPI:
      items:
      - path: "labels"
        fieldRef:
          fieldPath: metadata.labels
  - name: all-in-one
    projected:
      sources:
      - downwardAPI:
          items:
          - path: "labels"
            fieldRef:
              fieldPath: metadata.labels
      - serviceAccountToken:
          audience: vault
          expirationSeconds: 3600
          path: token
`)[0].object as any;
    expect(pod.spec.volumes[0].downwardApi.items[0].fieldRef.fieldPath).toBe("metadata.labels");
    expect(pod.spec.volumes[1].projected.sources[1].serviceAccountToken.audience).toBe("vault");
    expect(pod.spec.containers[0].volumeMounts[1].subPathExpr).toBe("$(POD_NAME)");
  });

  it("decodes a Secret's base64 data and a Lease", () => {
    const [secret, lease] = decode(`apiVersion: v1
kind: Secret
metadata: {name: s}
type: Opaque
data: {password: cGFzcw==}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: l}
spec: {holderIdentity: me, leaseDurationSeconds: 15}
`);
    expect(new TextDecoder().decode((secret.object as any).data.password)).toBe("pass");
    expect((lease.object as any).spec.holderIdentity).toBe("me");
  });

  it("reads several documents, Lists, and JSON", () => {
    const docs = parseManifestText(`${CONFIGMAP}\n---\n${SERVICE}\n---\n`, "a.yaml");
    expect(docs.map((d) => d.index)).toEqual([1, 2]);
    const list = parseManifestText(JSON.stringify({ apiVersion: "v1", kind: "List", items: [{ apiVersion: "v1", kind: "Namespace", metadata: { name: "x" } }, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "y" } }] }), "l.json");
    expect(list.map((d) => [d.index, d.item])).toEqual([[1, 1], [1, 2]]);
    expect(() => decodeDocument({ ...list[1], value: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "y" }, bogus: 1 } })).toThrow(
      "l.json: document 1, item 2 (ConfigMap y): unknown field bogus",
    );
  });

  it("orders namespaces first", () => {
    const objs = decode(`${CONFIGMAP}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: games}\n`);
    expect(namespacesFirst(objs).map((o) => o.kind.kind)).toEqual(["Namespace", "ConfigMap"]);
  });
});

describe("manifest errors", () => {
  it("names an unsupported field with file, document, kind and name", () => {
    const text = `${CONFIGMAP}---\n${DEPLOYMENT.replace("      containers:", "      shareProcessNamespace: true\n      containers:")}`;
    expect(() => decode(text, "deploy.yaml")).toThrow(
      "deploy.yaml: document 2 (Deployment nginx-deployment): unsupported field spec.template.spec.shareProcessNamespace (Skiff does not support it yet)",
    );
  });

  it("reports every broken document", () => {
    const text = `${SERVICE.replace("port: 80", "port: 80\n      appProtocol: http\n      bogus: 1")}---\n${DEPLOYMENT.replace("memory: 64Mi", "memory: 64MB!")}`;
    let msg = "";
    try {
      decode(text);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg.split("\n")).toEqual([
      "m.yaml: document 1 (Service my-service): unknown field spec.ports[0].bogus",
      expect.stringMatching(/^m\.yaml: document 2 \(Deployment nginx-deployment\): spec\.template\.spec\.containers\[0\]\.resources\.requests\.memory: invalid quantity "64MB!"/),
    ]);
  });

  it("decodes each document on its own: the good ones come back with every failure beside them", () => {
    const text = `${CONFIGMAP}---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n---\n${SERVICE.replace("port: 80", "port: 80\n      bogus: 1")}---\n${POD}`;
    const { objects, failures } = decodeDocuments(parseManifestText(text, "mixed.yaml"));
    expect(objects.map((o) => o.where)).toEqual(["mixed.yaml: document 1 (ConfigMap game-demo)", "mixed.yaml: document 4 (Pod busybox)"]);
    expect(failures).toEqual([
      expect.stringMatching(/^mixed\.yaml: document 2 \(Job j\): unknown kind "Job"/),
      "mixed.yaml: document 3 (Service my-service): unknown field spec.ports[0].bogus",
    ]);
  });

  it("lists a Deployment's seven unsupported fields and a typo in one error", () => {
    const deployment = DEPLOYMENT.replace(
      "      containers:",
      "      shareProcessNamespace: true\n      priorityClassName: high\n      runtimeClassName: gvisor\n      topologySpreadConstraints: []\n      containers:",
    ).replace(
      "      - image: nginx:1.14.2",
      "      - image: nginx:1.14.2\n        resizePolicy: []\n        stdinOnce: true\n        volumeDevices: []\n        securityContext: {readOnlyRootFilesytem: true}",
    );
    const { failures } = decodeDocuments(parseManifestText(deployment, "d.yaml"));
    expect(failures).toHaveLength(1);
    const [where, rest] = failures[0].split(": 8 problems: ");
    expect(where).toBe("d.yaml: document 1 (Deployment nginx-deployment)");
    expect(rest.split("; ")).toEqual([
      "unsupported field spec.template.spec.shareProcessNamespace (Skiff does not support it yet)",
      "unsupported field spec.template.spec.priorityClassName (Skiff does not support it yet)",
      "unsupported field spec.template.spec.runtimeClassName (Skiff does not support it yet)",
      "unsupported field spec.template.spec.topologySpreadConstraints (Skiff does not support it yet)",
      "unsupported field spec.template.spec.containers[0].resizePolicy (Skiff does not support it yet)",
      "unsupported field spec.template.spec.containers[0].stdinOnce (Skiff does not support it yet)",
      "unsupported field spec.template.spec.containers[0].volumeDevices (Skiff does not support it yet)",
      "unknown field spec.template.spec.containers[0].securityContext.readOnlyRootFilesytem (did you mean readOnlyRootFilesystem?)",
    ]);
  });

  it("rejects unknown kinds, wrong apiVersions and missing names", () => {
    expect(() => decode("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n")).toThrow(/unknown kind "Job" \(known kinds: ClusterRole, ClusterRoleBinding, ConfigMap, Deployment, /);
    expect(() => decode("apiVersion: v1\nkind: Deployment\nmetadata: {name: d}\n")).toThrow(
      'm.yaml: document 1 (Deployment d): Deployment has apiVersion "apps/v1", not "v1"',
    );
    expect(() => decode("kind: Pod\nmetadata: {name: p}\n")).toThrow(/apiVersion is required/);
    expect(() => decode("apiVersion: v1\nkind: Pod\nmetadata: {generateName: p-}\n")).toThrow(/metadata.name is required/);
    expect(() => decode("- a\n- b\n")).toThrow(/expected an object with apiVersion and kind/);
  });

  it("reports YAML syntax errors with their line", () => {
    expect(() => parseManifestText("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n spec: {}\n", "p.yaml")).toThrow(
      /^p\.yaml: YAML syntax error: .* at line 5, column \d+$/,
    );
    expect(() => parseManifestText("a: 1\na: 2\n", "d.yaml")).toThrow(/d\.yaml: YAML syntax error: Map keys must be unique at line 2/);
  });

  it("checks -n against the file's namespace", () => {
    const [pod] = decode(POD);
    expect(targetNamespace(pod.kind, "tools", undefined, pod.where)).toBe("tools");
    expect(targetNamespace(pod.kind, "", "dev", pod.where)).toBe("dev");
    expect(targetNamespace(pod.kind, "", undefined, pod.where)).toBe("default");
    expect(() => targetNamespace(pod.kind, "tools", "dev", pod.where)).toThrow(/does not match -n "dev"/);
    const ns = identifyDocument(parseManifestText("apiVersion: v1\nkind: Namespace\nmetadata: {name: x, namespace: y}\n", "n")[0]);
    expect(targetNamespace(ns.kind, ns.namespace, "dev", ns.where)).toBe("");
  });
});

describe("reading files", () => {
  const dir = mkdtempSync(join(tmpdir(), "skiffctl-manifest-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a directory's manifests in name order and stdin", async () => {
    writeFileSync(join(dir, "b.yaml"), CONFIGMAP);
    writeFileSync(join(dir, "a.json"), JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "n" } }));
    writeFileSync(join(dir, "notes.txt"), "not a manifest");
    const docs = await readManifests([dir, "-"], { readStdin: async () => SERVICE });
    expect(docs.map((d) => d.source)).toEqual([join(dir, "a.json"), join(dir, "b.yaml"), "<stdin>"]);
  });

  it("says when a file is missing or a directory is empty", async () => {
    await expect(readManifests([join(dir, "nope.yaml")])).rejects.toThrow(/nope\.yaml: no such file or directory/);
    const empty = mkdtempSync(join(dir, "empty-"));
    await expect(readManifests([empty])).rejects.toThrow(/no \.yaml, \.yml or \.json files/);
  });
});
