// For the authorization tests: an in-process apiserver on the memory store (its real watch
// caches feed the authorizers), writes through its generic operations, and a wait until the
// caches have seen them.
import { create } from "@bufbuild/protobuf";
import { kindByName, type ApiObject } from "../api/registry.ts";
import { startApiServer, type ApiServer } from "../apiserver/server.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { testPki } from "../pki/testing.ts";
import type { RequestAttributes, UserInfo, Verb } from "./types.ts";

export interface AuthTestApi {
  server: ApiServer;
  /** Creates (or updates, when it exists) an object and waits until the watch caches have it. */
  put(kindName: string, init: Record<string, unknown>): Promise<ApiObject>;
  /** Deletes an object and waits until the watch caches have seen it go. */
  remove(kindName: string, namespace: string, name: string): Promise<void>;
  namespace(name: string): Promise<void>;
  close(): Promise<void>;
}

export async function startAuthTestApi(): Promise<AuthTestApi> {
  const server = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0, heartbeatMs: 200 });
  // The caches follow storage asynchronously: wait until the kind's cache has seen the write.
  async function settle(kindName: string, revision: number): Promise<void> {
    const cache = server.caches.get(kindName)!;
    while (cache.revision() < revision) await new Promise((r) => setTimeout(r, 5));
  }
  async function put(kindName: string, init: Record<string, unknown>): Promise<ApiObject> {
    const kind = kindByName(kindName)!;
    const ops = server.ops.get(kind.kind)!;
    const obj = create(kind.schema, init) as ApiObject;
    let out: ApiObject;
    try {
      out = await ops.create(obj);
    } catch {
      const cur = await ops.get(obj.metadata?.namespace ?? "", obj.metadata!.name);
      obj.metadata!.resourceVersion = cur.metadata!.resourceVersion;
      if (kind.namespaced && !obj.metadata!.namespace) obj.metadata!.namespace = "default";
      out = await ops.update(obj);
    }
    await settle(kind.kind, Number(out.metadata!.resourceVersion));
    return out;
  }
  return {
    server,
    put,
    async remove(kindName, namespace, name) {
      const ops = server.ops.get(kindName)!;
      const { obj } = await ops.delete(namespace, name, undefined);
      await settle(kindName, Number(obj.metadata!.resourceVersion));
    },
    async namespace(name) {
      await put("Namespace", { metadata: { name } });
    },
    close: () => server.close(),
  };
}

export const user = (name: string, ...groups: string[]): UserInfo => ({ name, groups: [...groups, "system:authenticated"] });

/** Request attributes with the defaults most checks share. */
export function attrs(u: UserInfo, verb: Verb, resource: string, more: Partial<RequestAttributes> = {}): RequestAttributes {
  return { user: u, verb, apiGroup: "", resource, subresource: "", namespace: "", name: "", ...more };
}
