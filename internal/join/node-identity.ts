// NodeIdentityService: the signer of node certificates (the cluster CA's key stays here, in the
// apiserver). Flow of a join, after the pipeline authenticated a bootstrap token and RBAC allowed
// `create certificatesigningrequests/nodeclient`:
//
//   check both CSRs (signature, subject, names) → claim the node name (Node annotation holds the
//   sha256 of the machine's node secret; another secret = ALREADY_EXISTS) → sign → certificates
//
// Renewal is the same signing for the calling node (`system:node:<name>` from its certificate).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import { NodeCertificatesSchema, type JoinNodeRequest, type NodeCertificateRequests, type RenewNodeCertificatesRequest } from "../../gen/skiff/v1alpha1/node_identity_service_pb.js";
import { NodeSchema, type Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { ApiObject } from "../api/registry.ts";
import { validateDNS1123Subdomain } from "../api/names.ts";
import { invalid } from "../apiserver/errors.ts";
import type { ResourceOps } from "../apiserver/resources.ts";
import type { Target } from "../apiserver/pipeline.ts";
import { userKey } from "../auth/types.ts";
import { signPublicKey, type CertKeyPair } from "../pki/certs.ts";
import { readCsr } from "../pki/csr.ts";

/** The Node annotation that records which machine holds the name: sha256 of its node secret. */
export const NODE_IDENTITY_ANNOTATION = "skiff.io/node-identity";
export const NODE_USER_PREFIX = "system:node:";
export const NODES_GROUP = "system:nodes";
const MAX_SANS = 16;
const MAX_CSR_BYTES = 8192;
const DAY_MS = 86_400_000;

export interface NodeIdentityOptions {
  /** The cluster CA (certificate and key, PEM) that signs node certificates. */
  ca: CertKeyPair;
  nodes: ResourceOps;
  /** Lifetime of the certificates issued. Default one year. */
  certificateTtlMs?: number;
}

/** The calls as RBAC sees them (Kubernetes' names for the two kinds of node client requests). */
const csrs = { apiGroup: "certificates.k8s.io", resource: "certificatesigningrequests", namespace: "", name: "" };
export const nodeIdentityTargets: Record<string, Target> = {
  joinNode: () => ({ ...csrs, verb: "create", subresource: "nodeclient" }),
  renewNodeCertificates: () => ({ ...csrs, verb: "create", subresource: "selfnodeclient" }),
};

export function createNodeIdentityService(opts: NodeIdentityOptions): Record<string, unknown> {
  const ttl = opts.certificateTtlMs ?? 365 * DAY_MS;

  async function sign(nodeName: string, requests: NodeCertificateRequests | undefined) {
    const user = `${NODE_USER_PREFIX}${nodeName}`;
    const client = await checkedCsr(requests?.clientCsr ?? "", "requests.clientCsr");
    if (client.commonName !== user || client.organizations.join(",") !== NODES_GROUP || client.sans.length > 0) {
      throw invalid("node certificate request", [{ field: "requests.clientCsr", message: `must ask for CN ${user}, O ${NODES_GROUP} and no names` }]);
    }
    const serving = await checkedCsr(requests?.servingCsr ?? "", "requests.servingCsr");
    const badNames = serving.sans.filter((n) => isIP(n) === 0 && n !== nodeName && n !== "localhost");
    if (serving.commonName !== user || serving.sans.length === 0 || serving.sans.length > MAX_SANS || badNames.length > 0) {
      throw invalid("node certificate request", [
        { field: "requests.servingCsr", message: `must ask for CN ${user} and 1 to ${MAX_SANS} names: "${nodeName}", "localhost" or IP addresses${badNames.length ? ` (not ${badNames.slice(0, 3).join(", ")})` : ""}` },
      ]);
    }
    const notBefore = new Date(Date.now() - 60_000);
    const notAfter = new Date(Date.now() + ttl);
    return create(
      NodeCertificatesSchema,
      {
        clientCertificate: await signPublicKey(opts.ca, client.publicKey, { commonName: user, organizations: [NODES_GROUP], usage: "client", notBefore, notAfter }),
        servingCertificate: await signPublicKey(opts.ca, serving.publicKey, { commonName: user, sans: serving.sans, usage: "server", notBefore, notAfter }),
        caCertificate: opts.ca.cert,
      },
    );
  }

  /** Makes the Node exist with this machine's identity, or refuses when another machine holds the name. */
  async function claim(nodeName: string, nodeSecret: string): Promise<void> {
    const identity = nodeIdentityOf(nodeSecret);
    for (let attempt = 0; attempt < 5; attempt++) {
      let node: Node | undefined;
      try {
        node = (await opts.nodes.get("", nodeName)) as Node;
      } catch (err) {
        if (ConnectError.from(err).code !== Code.NotFound) throw err;
      }
      if (node) {
        const held = node.metadata?.annotations[NODE_IDENTITY_ANNOTATION] ?? "";
        if (held.length === identity.length && timingSafeEqual(Buffer.from(held), Buffer.from(identity))) return;
        throw new ConnectError(
          `node name "${nodeName}" is held by another machine's identity: pick another --node-name, or, if that machine is gone for good, delete its Node (skiffctl delete node ${nodeName}) and join again`,
          Code.AlreadyExists,
        );
      }
      try {
        await opts.nodes.create(create(NodeSchema, { metadata: { name: nodeName, annotations: { [NODE_IDENTITY_ANNOTATION]: identity } } }) as ApiObject);
        return;
      } catch (err) {
        if (ConnectError.from(err).code !== Code.AlreadyExists) throw err;
      }
    }
    throw new ConnectError(`node "${nodeName}" kept changing while it was claimed: try again`, Code.Aborted);
  }

  return {
    async joinNode(req: JoinNodeRequest) {
      const problems = validateDNS1123Subdomain(req.nodeName);
      if (problems.length) throw invalid("join request", [{ field: "nodeName", message: problems.join("; ") }]);
      if (req.nodeSecret.length < 16 || req.nodeSecret.length > 256) throw invalid("join request", [{ field: "nodeSecret", message: "must be 16 to 256 characters" }]);
      // Checked before the name is claimed: a bad request leaves no Node behind.
      const certificates = await sign(req.nodeName, req.requests);
      await claim(req.nodeName, req.nodeSecret);
      return { certificates };
    },
    async renewNodeCertificates(req: RenewNodeCertificatesRequest, ctx: HandlerContext) {
      const user = ctx.values.get(userKey);
      if (!user || !user.name.startsWith(NODE_USER_PREFIX) || !user.groups.includes(NODES_GROUP)) {
        throw new ConnectError(`only a node (${NODE_USER_PREFIX}<name> in ${NODES_GROUP}) renews its certificates; you are "${user?.name ?? ""}"`, Code.PermissionDenied);
      }
      return { certificates: await sign(user.name.slice(NODE_USER_PREFIX.length), req.requests) };
    },
  };
}

/** The record a Node keeps of the machine that holds its name. */
export function nodeIdentityOf(nodeSecret: string): string {
  return `sha256:${createHash("sha256").update(nodeSecret).digest("hex")}`;
}

async function checkedCsr(pem: string, field: string) {
  if (pem === "") throw invalid("node certificate request", [{ field, message: "required: a PEM certificate signing request" }]);
  if (pem.length > MAX_CSR_BYTES) throw invalid("node certificate request", [{ field, message: `at most ${MAX_CSR_BYTES} bytes` }]);
  try {
    return await readCsr(pem);
  } catch (err) {
    throw invalid("node certificate request", [{ field, message: (err as Error).message }]);
  }
}
