// Tokens of serviceAccountToken projections: one per (pod, projection), requested from the
// apiserver bound to the pod, and requested again once 80 % of its life has passed (the same rule
// as the kube-api-access token, serviceaccount-token.ts). Kept in memory: after an agent restart
// each projection asks once for a new token.
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { REFRESH_AT, type IssuedToken } from "../serviceaccount-token.ts";

export type TokenRequester = (pod: Pod, expirationSeconds: number, audiences?: string[]) => Promise<IssuedToken>;

export interface TokenSource {
  /** The projection's current token, requested when absent or due. */
  get(pod: Pod, projection: string, audience: string, expirationSeconds: number): Promise<string>;
  forget(uid: string): void;
}

export function createTokenSource(request: TokenRequester, now: () => number = Date.now): TokenSource {
  const byPod = new Map<string, Map<string, { token: string; refreshAt: number; audience: string; expirationSeconds: number }>>();
  return {
    async get(pod, projection, audience, expirationSeconds) {
      const uid = pod.metadata!.uid;
      let mine = byPod.get(uid);
      if (!mine) byPod.set(uid, (mine = new Map()));
      const have = mine.get(projection);
      if (have && now() < have.refreshAt && have.audience === audience && have.expirationSeconds === expirationSeconds) return have.token;
      const asked = now();
      const issued = await request(pod, expirationSeconds, audience ? [audience] : undefined);
      mine.set(projection, { token: issued.token, refreshAt: asked + (issued.expiresAt.getTime() - asked) * REFRESH_AT, audience, expirationSeconds });
      return issued.token;
    },
    forget(uid) {
      byPod.delete(uid);
    },
  };
}
