import { describe, expect, it } from "vitest";
import type { DescMessage } from "@bufbuild/protobuf";
import { kinds } from "../api/registry.ts";
import { kubeFieldName } from "./kube-json.ts";
import { editDistance, KUBE_FIELDS_SKIFF_LACKS, nearestName } from "./kube-unsupported.ts";

/** Every message reachable from a kind, by its short name. */
function messagesOfKinds(): Map<string, DescMessage> {
  const out = new Map<string, DescMessage>();
  const walk = (d: DescMessage) => {
    const short = d.typeName.slice(d.typeName.lastIndexOf(".") + 1);
    if (out.has(short) || d.typeName.startsWith("google.")) return;
    out.set(short, d);
    for (const f of d.fields) if (f.message) walk(f.message);
  };
  for (const k of kinds) walk(k.schema);
  return out;
}

describe("the table of Kubernetes fields Skiff lacks", () => {
  const messages = messagesOfKinds();

  it("names only messages our kinds use", () => {
    expect(Object.keys(KUBE_FIELDS_SKIFF_LACKS).filter((m) => !messages.has(m))).toEqual([]);
  });

  it("lists no field our proto has (remove an entry when its field is added)", () => {
    const stale: string[] = [];
    for (const [message, entry] of Object.entries(KUBE_FIELDS_SKIFF_LACKS)) {
      const ours = new Set(messages.get(message)!.fields.map(kubeFieldName));
      for (const f of entry.fields ?? []) if (ours.has(f)) stale.push(`${message}.${f}`);
      for (const f of Object.keys(entry.values ?? {})) if (!ours.has(f)) stale.push(`${message}.${f} (values of a field we lack)`);
    }
    expect(stale).toEqual([]);
  });
});

describe("nearestName", () => {
  it("suggests the name a typo meant, and nothing for unrelated words", () => {
    expect(editDistance("readOnlyRootFilesytem", "readOnlyRootFilesystem")).toBe(1);
    expect(nearestName("readOnlyRootFilesytem", ["runAsUser", "readOnlyRootFilesystem", "privileged"])).toBe("readOnlyRootFilesystem");
    expect(nearestName("containerport", ["containerPort", "hostPort"])).toBe("containerPort");
    expect(nearestName("imagePullPolicyy", ["image", "imagePullPolicy"])).toBe("imagePullPolicy");
    expect(nearestName("bogus", ["name", "image", "args"])).toBeUndefined();
    expect(nearestName("ab", ["ac", "ad"])).toBeUndefined(); // two equally near: no guess
  });
});
