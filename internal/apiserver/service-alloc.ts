// Service ClusterIPs and NodePorts. Every allocated value is one storage key of its own
// (/registry/serviceallocations/clusterips/<ip>, …/nodeports/<port>) whose value names the owning
// Service. The keys are created and deleted in the same transaction as the Service itself, so:
// - two creates (in one apiserver or in two on one etcd) cannot get the same value: the second
//   transaction's create-if-absent fails and it picks again;
// - a create that fails after choosing values writes nothing, so nothing leaks;
// - deleting a Service (also by namespace deletion) releases its values in the same write.
// repair() reconciles keys and Services from one consistent snapshot (see README.md).
import { Code, ConnectError } from "@connectrpc/connect";
import type { Service, ServiceSpec } from "../../gen/skiff/v1alpha1/service_pb.js";
import type { ApiObject, Kind } from "../api/registry.ts";
import type { Violation } from "../api/validation.ts";
import { StoreError, type Store, type TxnOp } from "../storage/store.ts";
import { invalid } from "./errors.ts";
import { decode, prefixFor } from "./objects.ts";
import type { WriteHooks } from "./resources.ts";
import { formatIPv4, parseIPv4, parseIPv4Cidr } from "../util/ipv4.ts";

export const DEFAULT_SERVICE_CIDR = "10.96.0.0/12";
export const DEFAULT_NODE_PORT_RANGE = "30000-32767";

const IP_PREFIX = "/registry/serviceallocations/clusterips/";
/** Tries that pick without reading what is held, in ranges at least this large. */
const BLIND_TRIES = 2;
const BLIND_MIN_RANGE = 1024;
const PORT_PREFIX = "/registry/serviceallocations/nodeports/";

export interface Range {
  first: number;
  last: number;
  /** As the user wrote it, for messages. */
  text: string;
}


/** The usable addresses of an IPv4 CIDR: without its network and broadcast addresses. */
export function parseServiceCidr(s: string): Range {
  const c = parseIPv4Cidr(s);
  if ("error" in c) {
    throw new Error(
      c.error === "format"
        ? `--service-cluster-ip-range must be an IPv4 CIDR from /8 to /30, e.g. ${DEFAULT_SERVICE_CIDR}, got "${s}"`
        : `--service-cluster-ip-range ${s} has host bits set (did you mean ${c.meant}?)`,
    );
  }
  return { first: c.first, last: c.last, text: s };
}

export function parsePortRange(s: string): Range {
  const m = /^(\d+)-(\d+)$/.exec(s.trim());
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1 || last > 65535 || first > last) {
    throw new Error(`--service-node-port-range must be FIRST-LAST within 1-65535, e.g. ${DEFAULT_NODE_PORT_RANGE}, got "${s}"`);
  }
  return { first, last, text: s };
}

export interface ServiceAllocatorOptions {
  store: Store;
  serviceKind: Kind;
  serviceCidr?: string;
  nodePortRange?: string;
}

/** Who holds a key: the Service's identity, so a key is only ever released by its owner. */
interface Owner {
  namespace: string;
  name: string;
  uid: string;
}

export interface RepairResult {
  /** Keys of Services that had none (written before allocation existed, or by hand). */
  created: string[];
  /** Keys no Service owns (e.g. a Service whose range changed). */
  removed: string[];
  /** Services that need a ClusterIP and have none: repair() gives them one through update. */
  needIP: Service[];
}

export interface ServiceAllocator {
  cidr: Range;
  ports: Range;
  hooks: WriteHooks;
  repair(): Promise<RepairResult>;
}

const needsIP = (s: ServiceSpec) => s.type !== "ExternalName" && s.clusterIp !== "None";
const needsNodePorts = (s: ServiceSpec) => s.type === "NodePort" || s.type === "LoadBalancer";
const ipKey = (ip: string) => IP_PREFIX + ip;
const portKey = (p: number) => PORT_PREFIX + String(p);

export function createServiceAllocator(opts: ServiceAllocatorOptions): ServiceAllocator {
  const { store } = opts;
  const cidr = parseServiceCidr(opts.serviceCidr ?? DEFAULT_SERVICE_CIDR);
  const ports = parsePortRange(opts.nodePortRange ?? DEFAULT_NODE_PORT_RANGE);
  const enc = new TextEncoder();
  const dec = new TextDecoder();

  const ownerOf = (svc: ApiObject): Owner => ({ namespace: svc.metadata!.namespace, name: svc.metadata!.name, uid: svc.metadata!.uid });
  const encodeOwner = (o: Owner) => enc.encode(JSON.stringify(o));
  function decodeOwner(v: Uint8Array): Owner | undefined {
    try {
      return JSON.parse(dec.decode(v)) as Owner;
    } catch {
      return undefined;
    }
  }
  const describe = (o: Owner | undefined) => (o ? `service "${o.namespace}/${o.name}"` : "another service");

  /**
   * Values already held, read from storage at the time of the call. In a large range the first
   * tries skip the read: a random value is almost always free, and a taken one only costs a retry
   * (measured by `npm run bench -- dns`: the read made creates ~2x slower).
   */
  async function held(prefix: string, range: Range, attempt: number): Promise<Set<string>> {
    if (attempt < BLIND_TRIES && range.last - range.first + 1 >= BLIND_MIN_RANGE) return new Set();
    const { items } = await store.list(prefix);
    return new Set(items.map((kv) => kv.key.slice(prefix.length)));
  }

  /** A free value from a random start, so that concurrent creators rarely choose the same one. */
  function pick(range: Range, taken: Set<string>, format: (n: number) => string): string | undefined {
    const size = range.last - range.first + 1;
    const start = Math.floor(Math.random() * size);
    for (let i = 0; i < size; i++) {
      const v = format(range.first + ((start + i) % size));
      if (!taken.has(v)) return v;
    }
    return undefined;
  }

  const what = (svc: ApiObject) => `service "${svc.metadata?.name ?? ""}"`;

  /** The requested value must be in range and not held by another Service. */
  async function claim(svc: ApiObject, key: string, field: string, value: string): Promise<TxnOp | undefined> {
    const kv = await store.get(key);
    if (!kv) return { op: "create", key, value: encodeOwner(ownerOf(svc)) };
    const o = decodeOwner(kv.value);
    if (o?.uid === svc.metadata!.uid) return undefined;
    throw new ConnectError(`${what(svc)}: ${field}: provided value ${value} is already allocated to ${describe(o)}`, Code.AlreadyExists);
  }

  async function release(svc: ApiObject, key: string): Promise<TxnOp | undefined> {
    const kv = await store.get(key);
    if (!kv || decodeOwner(kv.value)?.uid !== svc.metadata!.uid) return undefined;
    return { op: "delete", key, expectedModRevision: kv.modRevision };
  }

  /** Values kept from the stored Service are not checked again: the ranges may have changed since. */
  function rangeViolations(spec: ServiceSpec, checkIP: boolean, keptPorts: Set<number>): Violation[] {
    const v: Violation[] = [];
    if (checkIP && needsIP(spec) && spec.clusterIp !== "") {
      const n = parseIPv4(spec.clusterIp);
      if (n === undefined || n < cidr.first || n > cidr.last) {
        v.push({ field: "spec.clusterIP", message: `${spec.clusterIp} is not in the valid range: the range of valid IPs is ${cidr.text}` });
      }
    }
    if (needsNodePorts(spec)) {
      spec.ports.forEach((p, i) => {
        if (p.nodePort !== 0 && !keptPorts.has(p.nodePort) && (p.nodePort < ports.first || p.nodePort > ports.last)) {
          v.push({ field: `spec.ports[${i}].nodePort`, message: `${p.nodePort} is not in the valid range: the range of valid ports is ${ports.text}` });
        }
      });
    }
    return v;
  }

  /**
   * Fills the values the Service lacks and returns the key writes that go with it. `old` is the
   * stored Service on update: values it holds are kept, values it no longer needs are released.
   */
  async function allocate(svc: ApiObject, old: ApiObject | undefined, attempt: number): Promise<TxnOp[]> {
    const spec = (svc as Service).spec!;
    const prev = (old as Service | undefined)?.spec;
    const ops: TxnOp[] = [];
    // On update an unset clusterIP means "keep it", as in Kubernetes (manifests seldom carry it);
    // values the new type has no use for are dropped (validation let only stored ones through).
    if (prev && spec.clusterIp === "" && spec.type !== "ExternalName" && prev.type !== "ExternalName") spec.clusterIp = prev.clusterIp;
    if (spec.type === "ExternalName") spec.clusterIp = "";
    if (!needsNodePorts(spec)) for (const p of spec.ports) p.nodePort = 0;
    const oldPorts = new Set(prev && needsNodePorts(prev) ? prev.ports.map((p) => p.nodePort).filter((n) => n > 0) : []);
    const v = rangeViolations(spec, spec.clusterIp !== prev?.clusterIp, oldPorts);
    if (v.length) throw invalid(what(svc), v);

    // ClusterIP
    const oldIP = prev && needsIP(prev) ? prev.clusterIp : "";
    if (needsIP(spec)) {
      if (spec.clusterIp === "") {
        const ip = pick(cidr, await held(IP_PREFIX, cidr, attempt), formatIPv4);
        if (!ip) throw new ConnectError(`${what(svc)}: no ClusterIP left in ${cidr.text}`, Code.ResourceExhausted);
        spec.clusterIp = ip;
        // Picked, not asked for: if someone takes it first, the transaction fails and we pick again.
        ops.push({ op: "create", key: ipKey(ip), value: encodeOwner(ownerOf(svc)) });
      } else if (spec.clusterIp !== oldIP) {
        const op = await claim(svc, ipKey(spec.clusterIp), "spec.clusterIP", spec.clusterIp);
        if (op) ops.push(op);
      }
    }
    if (oldIP !== "" && oldIP !== spec.clusterIp) {
      const op = await release(svc, ipKey(oldIP));
      if (op) ops.push(op);
    }
    spec.clusterIps = spec.clusterIp === "" ? [] : [spec.clusterIp];

    // NodePorts: one key per port number; TCP and UDP of one Service may share it.
    const wanted = new Set<number>();
    if (needsNodePorts(spec)) {
      let taken: Set<string> | undefined;
      for (const [i, p] of spec.ports.entries()) {
        if (p.nodePort === 0) {
          const same = prev?.ports.find((q) => q.port === p.port && q.protocol === p.protocol && q.nodePort > 0);
          const sibling = spec.ports.find((q) => q !== p && q.port === p.port && q.nodePort > 0);
          if (same && needsNodePorts(prev!)) p.nodePort = same.nodePort;
          else if (sibling) p.nodePort = sibling.nodePort;
          else {
            taken ??= await held(PORT_PREFIX, ports, attempt);
            for (const n of wanted) taken.add(String(n));
            const port = pick(ports, taken, String);
            if (!port) throw new ConnectError(`${what(svc)}: spec.ports[${i}].nodePort: no port left in ${ports.text}`, Code.ResourceExhausted);
            p.nodePort = Number(port);
            ops.push({ op: "create", key: portKey(p.nodePort), value: encodeOwner(ownerOf(svc)) });
            wanted.add(p.nodePort);
            continue;
          }
        }
        if (!wanted.has(p.nodePort) && !oldPorts.has(p.nodePort)) {
          const op = await claim(svc, portKey(p.nodePort), `spec.ports[${i}].nodePort`, String(p.nodePort));
          if (op) ops.push(op);
        }
        wanted.add(p.nodePort);
      }
    }
    for (const n of oldPorts) {
      if (wanted.has(n)) continue;
      const op = await release(svc, portKey(n));
      if (op) ops.push(op);
    }
    return ops;
  }

  /** Keys a Service holds, by what its spec says. */
  function keysOf(svc: Service): string[] {
    const spec = svc.spec;
    if (!spec) return [];
    const out = new Set<string>();
    if (needsIP(spec) && spec.clusterIp !== "") out.add(ipKey(spec.clusterIp));
    if (needsNodePorts(spec)) for (const p of spec.ports) if (p.nodePort > 0) out.add(portKey(p.nodePort));
    return [...out];
  }

  const hooks: WriteHooks = {
    create: (svc, attempt) => allocate(svc, undefined, attempt),
    update: (svc, old, attempt) => allocate(svc, old, attempt),
    async remove(svc) {
      const ops: TxnOp[] = [];
      for (const key of keysOf(svc as Service)) {
        const op = await release(svc, key);
        if (op) ops.push(op);
      }
      return ops;
    },
    taken(requested, key) {
      const spec = (requested as Service).spec;
      if (!spec) return undefined;
      // A value the user asked for was taken between our check and our write: their error.
      if (key === ipKey(spec.clusterIp)) {
        return new ConnectError(`${what(requested)}: spec.clusterIP: provided value ${spec.clusterIp} is already allocated`, Code.AlreadyExists);
      }
      const i = spec.ports.findIndex((p) => p.nodePort > 0 && key === portKey(p.nodePort));
      if (i >= 0) {
        return new ConnectError(`${what(requested)}: spec.ports[${i}].nodePort: provided value ${spec.ports[i].nodePort} is already allocated`, Code.AlreadyExists);
      }
      return undefined;
    },
  };

  return {
    cidr,
    ports,
    hooks,
    async repair() {
      // One revision for every list: a Service and its keys are written together, so a key
      // without its Service in this snapshot is really orphaned.
      const revision = await store.currentRevision();
      const [svcs, ips, nodePorts] = await Promise.all([
        store.list(prefixFor(opts.serviceKind), { revision }),
        store.list(IP_PREFIX, { revision }),
        store.list(PORT_PREFIX, { revision }),
      ]);
      const services = svcs.items.map((kv) => decode(opts.serviceKind, kv.value, kv.modRevision) as Service);
      const uids = new Set(services.map((s) => s.metadata!.uid));
      const present = new Set([...ips.items, ...nodePorts.items].map((kv) => kv.key));
      const result: RepairResult = { created: [], removed: [], needIP: [] };
      for (const kv of [...ips.items, ...nodePorts.items]) {
        if (uids.has(decodeOwner(kv.value)?.uid ?? "")) continue;
        try {
          await store.delete(kv.key, kv.modRevision);
          result.removed.push(kv.key);
        } catch (err) {
          if (!(err instanceof StoreError)) throw err;
        }
      }
      for (const svc of services) {
        if (svc.spec && needsIP(svc.spec) && svc.spec.clusterIp === "") result.needIP.push(svc);
        for (const key of keysOf(svc)) {
          if (present.has(key)) continue;
          try {
            await store.create(key, encodeOwner(ownerOf(svc)));
            result.created.push(key);
          } catch (err) {
            if (!(err instanceof StoreError && err.code === "AlreadyExists")) throw err;
          }
        }
      }
      return result;
    },
  };
}
