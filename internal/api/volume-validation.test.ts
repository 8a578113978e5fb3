import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { VolumeMountSchema, VolumeSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { validateSubPath, validateVolume } from "./volume-validation.ts";

const vol = (init: object) => create(VolumeSchema, { name: "v", ...init });
const fields = (vs: { field: string; message: string }[]) => vs.map((v) => `${v.field}: ${v.message}`);
const containers = new Set(["app"]);

describe("volume validation", () => {
  it("wants exactly one source", () => {
    expect(fields(validateVolume(vol({}), "spec.volumes[0]", containers))[0]).toMatch(/^spec.volumes\[0\]: exactly one volume source must be set \(emptyDir, .*downwardAPI, projected\)/);
    expect(validateVolume(vol({ emptyDir: {}, configMap: { name: "c" } }), "v", containers)).toHaveLength(1);
    expect(validateVolume(vol({ projected: { sources: [] } }), "v", containers)).toEqual([]);
  });

  it("keeps item paths inside the volume", () => {
    const v = vol({ configMap: { name: "c", items: [{ key: "k", path: "../etc/passwd" }, { key: "k", path: "/abs" }, { key: "k", path: "ok/x" }] } });
    expect(fields(validateVolume(v, "s", containers))).toEqual(["s.configMap.items[0].path: must not contain '..'", "s.configMap.items[1].path: must be a relative path"]);
  });

  it("checks downwardAPI files and projections: one source each, known fields, a container that exists, a token of at least 10 minutes", () => {
    const v = vol({
      projected: {
        sources: [
          { secret: { name: "s" }, configMap: { name: "c" } },
          { downwardApi: { items: [{ path: "f", fieldRef: { fieldPath: "status.podIP" } }, { path: "r", resourceFieldRef: { resource: "limits.gpu", containerName: "nope" } }] } },
          { serviceAccountToken: { path: "../t", expirationSeconds: 60n } },
        ],
      },
    });
    const got = fields(validateVolume(v, "s", containers));
    expect(got).toContain("s.projected.sources[0]: exactly one of secret, configMap, downwardAPI, serviceAccountToken must be set");
    expect(got.some((m) => m.startsWith('s.projected.sources[1].downwardAPI.items[0].fieldRef.fieldPath: unsupported value "status.podIP"'))).toBe(true);
    expect(got.some((m) => m.startsWith('s.projected.sources[1].downwardAPI.items[1].resourceFieldRef.resource: unsupported value "limits.gpu"'))).toBe(true);
    expect(got).toContain('s: resourceFieldRef names container "nope", which the pod does not have');
    expect(got).toContain("s.projected.sources[2].serviceAccountToken.path: must not contain '..'");
    expect(got).toContain("s.projected.sources[2].serviceAccountToken.expirationSeconds: must be at least 600 (10 minutes) and at most 4294967296");
  });

  it("keeps subPath and subPathExpr relative, inside the volume, and not both", () => {
    const m = (init: object) => create(VolumeMountSchema, { name: "v", mountPath: "/x", ...init });
    expect(validateSubPath(m({ subPath: "a/b" }), "p")).toEqual([]);
    expect(fields(validateSubPath(m({ subPath: "../a" }), "p"))).toEqual(["p.subPath: must not contain '..'"]);
    expect(fields(validateSubPath(m({ subPathExpr: "/$(X)" }), "p"))).toEqual(["p.subPathExpr: must be a relative path"]);
    expect(fields(validateSubPath(m({ subPath: "a", subPathExpr: "b" }), "p"))).toEqual(["p.subPathExpr: subPath and subPathExpr are mutually exclusive"]);
  });
});

describe("pod spec validation", () => {
  it("reports volume and subPath violations at their field paths", async () => {
    const { validatePodSpec } = await import("./validation.ts");
    const { PodSpecSchema } = await import("../../gen/skiff/v1alpha1/pod_pb.js");
    const spec = create(PodSpecSchema, {
      containers: [{ name: "app", image: "x", volumeMounts: [{ name: "d", mountPath: "/d", subPathExpr: "../$(X)" }] }],
      volumes: [{ name: "d", downwardApi: { items: [{ path: "f", fieldRef: { fieldPath: "metadata.name" }, resourceFieldRef: { resource: "limits.cpu", containerName: "app" } }] } }],
    });
    expect(fields(validatePodSpec(spec, "spec"))).toEqual([
      "spec.volumes[0].downwardAPI.items[0]: exactly one of fieldRef and resourceFieldRef must be set",
      "spec.containers[0].volumeMounts[0].subPathExpr: must not contain '..'",
    ]);
  });
});
