// What a pod update may change, as Kubernetes allows it: its images, its active deadline and its
// tolerations; and its node only while unbound. Compared as protobuf messages (field by field,
// unset and default told apart as the API tells them apart), never as text: a spec defaulted or
// admitted in another order is the same spec.
import { create, equals, type DescField } from "@bufbuild/protobuf";
import { cloneMessage } from "./codec/index.ts";
import { PodSpecSchema, type PodSpec } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { FieldViolation } from "./names.ts";

const MUTABLE = "spec.containers[*].image, spec.initContainers[*].image, spec.activeDeadlineSeconds and spec.tolerations";

/** The spec without what may change, on `nodeName`: two specs are an allowed update iff these are equal. */
function fixedPart(spec: PodSpec, nodeName: string): PodSpec {
  const s = cloneMessage(PodSpecSchema, spec);
  s.nodeName = nodeName;
  for (const c of [...s.containers, ...s.initContainers]) c.image = "";
  s.activeDeadlineSeconds = undefined;
  s.tolerations = [];
  return s;
}

function onlyField(spec: PodSpec, field: DescField): PodSpec {
  const s = create(PodSpecSchema);
  (s as any)[field.localName] = (spec as any)[field.localName];
  return s;
}

export function podUpdateViolations(spec: PodSpec, old: PodSpec): FieldViolation[] {
  if (old.nodeName !== "" && spec.nodeName !== old.nodeName) {
    return [{ field: "spec.nodeName", message: "field is immutable once the pod is bound" }];
  }
  const next = fixedPart(spec, old.nodeName);
  const prev = fixedPart(old, old.nodeName);
  if (equals(PodSpecSchema, next, prev)) return [];
  const changed = PodSpecSchema.fields
    .filter((f) => !equals(PodSpecSchema, onlyField(next, f), onlyField(prev, f)))
    .map((f) => `spec.${f.jsonName}`);
  return [{ field: "spec", message: `pod updates may not change fields other than ${MUTABLE} (changed: ${changed.join(", ")})` }];
}
