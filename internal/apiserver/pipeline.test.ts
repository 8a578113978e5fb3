import { Code, ConnectError } from "@connectrpc/connect";
import type { TLSSocket } from "node:tls";
import { describe, expect, it } from "vitest";
import { kinds } from "../api/registry.ts";
import { createAuthenticator, type Peer } from "../auth/authn/authenticator.ts";
import { userKey, type RequestAttributes } from "../auth/types.ts";
import { createRequestPipeline } from "./pipeline.ts";

const kind = (k: string) => kinds.find((x) => x.kind === k)!;
// A connection whose certificate TLS already verified.
const peer = (cn: string, o: string[] = []): Peer => ({ key: {}, socket: { authorized: true, getPeerCertificate: () => ({ subject: { CN: cn, O: o }, valid_to: "Jan  1 00:00:00 2100 GMT" }) } as unknown as TLSSocket });
const noHeaders = () => undefined;

function setup() {
  const seen: RequestAttributes[] = [];
  const pipeline = createRequestPipeline({
    authenticator: createAuthenticator(),
    authorizer: { authorize: (a) => (seen.push(a), { decision: a.user.name === "mallory" ? "deny" : "allow", reason: "" }) },
  });
  return { seen, pipeline };
}

describe("the request pipeline", () => {
  it("builds each method's attributes from the kind registry", async () => {
    const { seen, pipeline } = setup();
    const handlers = { updateStatus: async () => "ok", bind: async () => "ok", list: async () => "ok" };
    const pods = pipeline.guard(kind("Pod"), handlers) as Record<string, (r: unknown, c: unknown) => Promise<string>>;
    const nodes = pipeline.guard(kind("Node"), { get: async () => "ok" }) as Record<string, (r: unknown, c: unknown) => Promise<string>>;
    const deployments = pipeline.guard(kind("Deployment"), { list: async () => "ok" }) as Record<string, (r: unknown, c: unknown) => Promise<string>>;
    const ctx = () => ({ values: pipeline.begin(peer("system:node:n1", ["system:nodes"]), noHeaders) });
    await pods.updateStatus({ pod: { metadata: { namespace: "ns1", name: "p1" } } }, ctx());
    await pods.bind({ namespace: "ns1", name: "p1", nodeName: "n1" }, ctx());
    await nodes.get({ namespace: "ignored", name: "n1" }, ctx());
    await deployments.list({ namespace: "" }, ctx());
    expect(seen.map((a) => [a.verb, a.apiGroup, a.resource, a.subresource, a.namespace, a.name])).toEqual([
      ["update", "", "pods", "status", "ns1", "p1"],
      ["create", "", "pods", "binding", "ns1", "p1"],
      ["get", "", "nodes", "", "", "n1"],
      ["list", "apps", "deployments", "", "", ""],
    ]);
    expect(seen[0].user).toEqual({ name: "system:node:n1", groups: ["system:nodes", "system:authenticated"], authenticatedBy: "x509" });
  });

  it("names a Namespace as its own namespace, carries list/watch selectors, and reads a kind's own RPCs from subresourceRpcs", async () => {
    const { seen, pipeline } = setup();
    const call = (k: string, method: string, req: unknown) =>
      (pipeline.guard(kind(k), { [method]: async () => "ok" }) as Record<string, (r: unknown, c: unknown) => Promise<string>>)[method](req, {
        values: pipeline.begin(peer("system:node:n1", ["system:nodes"]), noHeaders),
      });
    await call("Namespace", "get", { name: "team-a" });
    await call("Pod", "list", { namespace: "", fieldSelector: "spec.nodeName=n1", labelSelector: "app=web" });
    await call("ServiceAccount", "createToken", { namespace: "ns1", name: "robot" });
    expect(seen.map((a) => [a.verb, a.resource, a.subresource, a.namespace, a.name, a.fieldSelector, a.labelSelector])).toEqual([
      ["get", "namespaces", "", "team-a", "team-a", undefined, undefined],
      ["list", "pods", "", "", "", "spec.nodeName=n1", "app=web"],
      ["create", "serviceaccounts", "token", "ns1", "robot", undefined, undefined],
    ]);
  });

  it("puts the user in the context for the handler, and refuses a denied call before it runs", async () => {
    const { pipeline } = setup();
    let ran = 0;
    const cms = pipeline.guard(kind("ConfigMap"), { get: async (_r: unknown, c: any) => (ran++, c.values.get(userKey)?.name) }) as Record<string, (r: unknown, c: unknown) => Promise<string>>;
    expect(await cms.get({ namespace: "a", name: "x" }, { values: pipeline.begin(peer("alice"), noHeaders) })).toBe("alice");
    const err = await cms.get({ namespace: "a", name: "x" }, { values: pipeline.begin(peer("mallory"), noHeaders) }).catch((e) => ConnectError.from(e));
    expect([(err as ConnectError).code, (err as ConnectError).rawMessage]).toEqual([Code.PermissionDenied, 'configmaps "x" is forbidden: User "mallory" cannot get resource "configmaps" in API group "" in the namespace "a"']);
    expect(ran).toBe(1);
  });

  it("guards every server-streaming method as a stream (Log as well as Watch): get on pods/log, refused on the first read before the handler runs", async () => {
    const { seen, pipeline } = setup();
    let opened = 0;
    const pods = pipeline.guard(kind("Pod"), {
      async *log() {
        opened++;
        yield "line\n";
      },
    }) as Record<string, (r: unknown, c: unknown) => AsyncIterable<string>>;
    const read = async (cn: string) => {
      const out: string[] = [];
      for await (const chunk of pods.log({ namespace: "ns1", name: "web", container: "app" }, { values: pipeline.begin(peer(cn), noHeaders) })) out.push(chunk);
      return out;
    };
    expect(await read("alice")).toEqual(["line\n"]);
    const err = await read("mallory").catch((e) => ConnectError.from(e));
    expect([(err as ConnectError).code, (err as ConnectError).rawMessage]).toEqual([Code.PermissionDenied, 'pods/log "web" is forbidden: User "mallory" cannot get resource "pods/log" in API group "" in the namespace "ns1"']);
    expect(opened).toBe(1);
    expect(seen.map((a) => [a.verb, a.resource, a.subresource, a.namespace, a.name])).toEqual([
      ["get", "pods", "log", "ns1", "web"],
      ["get", "pods", "log", "ns1", "web"],
    ]);
  });

  it("refuses to guard a method it has no attributes for, so a new RPC cannot go unguarded", () => {
    const { pipeline } = setup();
    expect(() => pipeline.guard(kind("Pod"), { exec: async () => "" })).toThrow("skiff.v1alpha1.PodService.exec: no authorization attributes; add the method to METHOD_ATTRIBUTES (internal/apiserver/pipeline.ts) or to the kind's subresourceRpcs");
  });
});
