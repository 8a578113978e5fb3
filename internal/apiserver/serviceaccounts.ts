// ServiceAccounts in the apiserver: the TokenRequest RPC (ServiceAccountService.CreateToken), the
// authenticator of the tokens it signs, and the admission step every new pod goes through
// (Kubernetes' ServiceAccount admission plugin):
//
//   pod create ─► serviceAccountName defaults to "default" ─► that account must exist (the
//              "default" one is made on the spot if the controller has not yet) ─► the account's
//              imagePullSecrets (pod has none) and automountServiceAccountToken: false copied in
//
//   CreateToken ─► account (and bound pod) from the watch cache, storage on a miss ─► JWT signed
//                  with the cluster key
//   authenticate ─► signature cached per token ─► account and pod looked up in the watch caches
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { ServiceAccountSchema, type ServiceAccount } from "../../gen/skiff/v1alpha1/service_account_pb.js";
import type { ServiceAccountServiceCreateTokenRequest } from "../../gen/skiff/v1alpha1/service_account_service_pb.js";
import type { ApiObject } from "../api/registry.ts";
import type { Violation } from "../api/validation.ts";
import {
  createServiceAccountAuthenticator,
  createTokenIssuer,
  DEFAULT_EXPIRATION_SECONDS,
  MAX_EXPIRATION_SECONDS,
  MIN_EXPIRATION_SECONDS,
  type ServiceAccountAuthenticator,
  type SigningKey,
  type TokenObjectLookup,
  type VerifyKey,
} from "../auth/serviceaccount/index.ts";
import { invalid } from "./errors.ts";
import { keyFor } from "./objects.ts";
import type { ResourceOps } from "./resources.ts";
import type { WatchCache } from "./watchcache.ts";

export const DEFAULT_SERVICE_ACCOUNT = "default";

export interface ServiceAccountOptions {
  signingKey: SigningKey;
  /** Keys tokens are accepted from (the signing key's public half is always one). */
  verifyKeys?: VerifyKey[];
  issuer?: string;
  /** Audiences the apiserver accepts; tokens without audiences get the first. Default: [issuer]. */
  audiences?: string[];
}

export interface ServiceAccounts {
  authenticator: ServiceAccountAuthenticator;
  /** The handlers added to ServiceAccountService beyond the generic ones. */
  rpcs: Record<string, unknown>;
  /** Admission of a new pod (mutates it). */
  admitPod(pod: ApiObject): Promise<void>;
}

export function createServiceAccounts(opts: ServiceAccountOptions & { ops: Map<string, ResourceOps>; caches: Map<string, WatchCache>; log?: Logger }): ServiceAccounts {
  const saOps = () => opts.ops.get("ServiceAccount")!;
  const podOps = () => opts.ops.get("Pod")!;
  const issuer = createTokenIssuer({ key: opts.signingKey, issuer: opts.issuer });
  const audiences = opts.audiences ?? [issuer.issuer];
  const own: VerifyKey = { publicKey: opts.signingKey.publicKey, keyId: opts.signingKey.keyId };
  const verifyKeys = [own, ...(opts.verifyKeys ?? []).filter((k) => k.keyId !== own.keyId)];

  /** From storage: NotFound is undefined. */
  async function read<T>(ops: ResourceOps, namespace: string, name: string): Promise<T | undefined> {
    try {
      return (await ops.get(namespace, name)) as unknown as T;
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.NotFound) return undefined;
      throw err;
    }
  }

  /**
   * The watch cache's copy when it has one (and `usable` accepts it), else storage (the cache may
   * lag a create by a moment): CreateToken runs once per pod start, and two storage reads each
   * time cost etcd more than the token. A token issued from a copy a moment stale (its account or
   * pod just deleted) is refused when used: the authenticator checks both in the same caches.
   */
  async function cachedOrRead<T extends ApiObject>(ops: ResourceOps, namespace: string, name: string, usable: (cached: T) => boolean = () => true): Promise<T | undefined> {
    const cached = opts.caches.get(ops.kind.kind)?.get(keyFor(ops.kind, namespace, name)) as T | undefined;
    if (cached && usable(cached)) return cached;
    return read<T>(ops, namespace, name);
  }

  /** The watch cache's copy, else storage (the cache may lag a create by a moment). */
  function uidOf(kindName: string, namespace: string, name: string): string | undefined | Promise<string | undefined> {
    const ops = opts.ops.get(kindName)!;
    const cached = opts.caches.get(kindName)?.get(keyFor(ops.kind, namespace, name));
    if (cached) return cached.metadata!.uid;
    return read<ApiObject>(ops, namespace, name).then((o) => o?.metadata?.uid);
  }

  const lookup: TokenObjectLookup = {
    serviceAccountUid: (ns, name) => uidOf("ServiceAccount", ns, name),
    podUid: (ns, name) => uidOf("Pod", ns, name),
  };

  const authenticator = createServiceAccountAuthenticator({
    keys: verifyKeys,
    issuer: issuer.issuer,
    audiences,
    lookup,
    onReject: (reason) => opts.log?.info({ reason }, "service account token refused"),
  });

  async function createToken(req: ServiceAccountServiceCreateTokenRequest) {
    const v: Violation[] = [];
    const ns = req.namespace || "default";
    if (req.name === "") v.push({ field: "name", message: "required: the ServiceAccount to issue a token for" });
    const seconds = req.expirationSeconds === 0n ? DEFAULT_EXPIRATION_SECONDS : Number(req.expirationSeconds);
    if (seconds < MIN_EXPIRATION_SECONDS || seconds > MAX_EXPIRATION_SECONDS) {
      v.push({ field: "expirationSeconds", message: `must be from ${MIN_EXPIRATION_SECONDS} (10m) to ${MAX_EXPIRATION_SECONDS} (48h), got ${req.expirationSeconds}` });
    }
    req.audiences.forEach((a, i) => {
      if (a.trim() === "") v.push({ field: `audiences[${i}]`, message: "must not be empty" });
    });
    const bound = req.boundObjectRef;
    if (bound) {
      if (bound.kind !== "Pod") v.push({ field: "boundObjectRef.kind", message: `only "Pod" is supported, got "${bound.kind}"` });
      if (bound.name === "") v.push({ field: "boundObjectRef.name", message: "required" });
    }
    if (v.length) throw invalid("token request", v);

    const sa = await cachedOrRead<ServiceAccount>(saOps(), ns, req.name);
    if (!sa) throw new ConnectError(`serviceaccount "${req.name}" not found in namespace "${ns}"`, Code.NotFound);
    if (sa.metadata!.deletionTimestamp) throw new ConnectError(`serviceaccount "${ns}/${req.name}" is being deleted`, Code.FailedPrecondition);
    let pod: { name: string; uid: string } | undefined;
    if (bound) {
      // A cached pod of another uid may be the one before a re-create: storage decides then.
      const p = await cachedOrRead<Pod>(podOps(), ns, bound.name, (c) => bound.uid === "" || c.metadata!.uid === bound.uid);
      if (!p) throw new ConnectError(`boundObjectRef: pod "${bound.name}" not found in namespace "${ns}"`, Code.NotFound);
      if (bound.uid !== "" && bound.uid !== p.metadata!.uid) {
        throw new ConnectError(`boundObjectRef: pod "${bound.name}" has uid ${p.metadata!.uid}, not ${bound.uid}`, Code.FailedPrecondition);
      }
      const podSa = p.spec?.serviceAccountName || DEFAULT_SERVICE_ACCOUNT;
      if (podSa !== req.name) {
        throw new ConnectError(`boundObjectRef: pod "${bound.name}" runs as serviceaccount "${podSa}", not "${req.name}"`, Code.FailedPrecondition);
      }
      if (p.metadata!.deletionTimestamp) throw new ConnectError(`boundObjectRef: pod "${bound.name}" is being deleted`, Code.FailedPrecondition);
      pod = { name: p.metadata!.name, uid: p.metadata!.uid };
    }
    const issued = await issuer.issue({
      namespace: ns,
      serviceAccount: { name: req.name, uid: sa.metadata!.uid },
      audiences: req.audiences.length > 0 ? req.audiences : [audiences[0]],
      expirationSeconds: seconds,
      pod,
    });
    return { token: issued.token, expirationTimestamp: timestampFromDate(issued.expiresAt) };
  }

  async function admitPod(obj: ApiObject): Promise<void> {
    const pod = obj as unknown as Pod;
    const spec = pod.spec;
    if (!spec) return;
    const ns = pod.metadata!.namespace;
    if (spec.serviceAccountName === "") spec.serviceAccountName = DEFAULT_SERVICE_ACCOUNT;
    // The watch cache's copy saves a storage read per pod; a miss (it may lag a create) reads storage.
    const cached = opts.caches.get("ServiceAccount")?.get(keyFor(saOps().kind, ns, spec.serviceAccountName)) as ServiceAccount | undefined;
    let sa = cached ?? (await read<ServiceAccount>(saOps(), ns, spec.serviceAccountName));
    if (!sa && spec.serviceAccountName === DEFAULT_SERVICE_ACCOUNT) sa = await ensureDefault(ns);
    if (!sa) {
      throw new ConnectError(
        `pod "${pod.metadata!.name || pod.metadata!.generateName}": spec.serviceAccountName: serviceaccount "${spec.serviceAccountName}" not found in namespace "${ns}": create it first`,
        Code.FailedPrecondition,
      );
    }
    if (spec.imagePullSecrets.length === 0 && sa.imagePullSecrets.length > 0) {
      spec.imagePullSecrets = sa.imagePullSecrets.map((r) => ({ ...r }));
    }
    if (spec.automountServiceAccountToken === undefined && sa.automountServiceAccountToken === false) {
      spec.automountServiceAccountToken = false;
    }
  }

  /** The "default" account the controller makes in every namespace, made here when a pod needs it first. */
  async function ensureDefault(ns: string): Promise<ServiceAccount | undefined> {
    try {
      return (await saOps().create(create(ServiceAccountSchema, { metadata: { name: DEFAULT_SERVICE_ACCOUNT, namespace: ns } }))) as unknown as ServiceAccount;
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.AlreadyExists) return read<ServiceAccount>(saOps(), ns, DEFAULT_SERVICE_ACCOUNT);
      throw err;
    }
  }

  return { authenticator, rpcs: { createToken }, admitPod };
}
