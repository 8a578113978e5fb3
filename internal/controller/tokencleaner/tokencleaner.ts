// Token cleaner (Kubernetes' tokencleaner): a join token's Secret is deleted once its expiration
// passes. The authenticator already refuses an expired token; this keeps `skiff token list` and
// kube-system tidy. Each token is re-checked when it is due (a delayed requeue), and the delete
// carries the resourceVersion it judged, so a token whose expiry was just extended survives.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Secret } from "../../../gen/skiff/v1alpha1/config_pb.js";
import { splitKey } from "../../client/informer.ts";
import { createResourceClient } from "../../client/resource-client.ts";
import { readTokenSecret } from "../../join/token.ts";
import { createController, type Controller, type ControllerContext, type Result } from "../controller.ts";

export function createTokenCleaner(ctx: ControllerContext): Controller {
  const secrets = ctx.informers.informerFor<Secret>("Secret");
  const client = createResourceClient<Secret>(ctx.transport, "Secret");
  const controller = createController({ name: "token-cleaner", log: ctx.log, workers: 1, reconcile });
  controller.watch(secrets);

  async function reconcile(key: string): Promise<Result> {
    const s = secrets.get(key);
    const token = s && readTokenSecret(s);
    if (!token?.expires) return;
    const wait = token.expires.getTime() - Date.now();
    if (wait > 0) return { requeueAfterMs: wait };
    const { namespace, name } = splitKey(key);
    try {
      await client.delete(namespace, name, { uid: s!.metadata!.uid, resourceVersion: s!.metadata!.resourceVersion });
      ctx.log?.info({ token: token.id }, "deleted an expired join token");
    } catch (err) {
      const code = ConnectError.from(err).code;
      // Gone already, or changed since the cache saw it (its update queues the key again).
      if (code === Code.NotFound || code === Code.Aborted) return;
      throw err;
    }
  }

  return controller;
}
