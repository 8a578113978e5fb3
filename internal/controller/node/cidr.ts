// Pod CIDR allocation: the cluster's pod network (e.g. 10.244.0.0/16) cut into equal per-node
// ranges (/24). The allocator is only memory: the controller fills it from the Nodes it sees
// (their spec.podCidrs say what is taken), so a restart rebuilds it before anything is handed out.
// IPv4 only.

export interface CidrAllocator {
  /** The cluster range, normalised ("10.244.0.0/16"). */
  readonly clusterCidr: string;
  /** How many node ranges the cluster range holds. */
  readonly capacity: number;
  /**
   * Records that `node` holds exactly these CIDRs (from its spec). Ranges outside the cluster
   * range are ignored; one that overlaps another node's is recorded anyway (the node has it), and
   * returned so the caller can warn.
   */
  observe(node: string, cidrs: readonly string[]): string[];
  /** The node's range: the one it holds, or the next free one (undefined when all are taken). */
  allocate(node: string): string | undefined;
  /** Frees every range the node holds (the node was deleted). */
  release(node: string): void;
  /** The ranges a node holds. */
  heldBy(node: string): string[];
  /** Ranges in use. */
  used(): number;
}

interface Range {
  start: number;
  /** Number of addresses: 2^(32 - prefix). */
  size: number;
}

const ipv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseCidr(cidr: string): Range & { prefix: number } {
  const [ip, bits, ...rest] = cidr.trim().split("/");
  const m = ipv4.exec(ip ?? "");
  const prefix = Number(bits);
  if (!m || rest.length > 0 || bits === undefined || !/^\d{1,2}$/.test(bits) || prefix > 32) {
    throw new Error(`invalid IPv4 CIDR "${cidr}"`);
  }
  const octets = m.slice(1, 5).map(Number);
  if (octets.some((o) => o > 255)) throw new Error(`invalid IPv4 CIDR "${cidr}"`);
  const addr = octets.reduce((a, o) => a * 256 + o, 0);
  const size = 2 ** (32 - prefix);
  // Host bits set ("10.244.1.7/16") are masked off, as net.ParseCIDR does.
  return { start: addr - (addr % size), size, prefix };
}

export function formatIp(addr: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(addr / 2 ** s) % 256).join(".");
}

export function createCidrAllocator(opts: { clusterCidr: string; nodeMaskSize: number }): CidrAllocator {
  const cluster = parseCidr(opts.clusterCidr);
  const mask = opts.nodeMaskSize;
  if (!Number.isInteger(mask) || mask < cluster.prefix || mask > 32) {
    throw new Error(`node CIDR mask size ${mask} must be between the cluster prefix (${cluster.prefix}) and 32`);
  }
  if (mask - cluster.prefix > 20) {
    throw new Error(`node CIDR mask size ${mask} cuts ${opts.clusterCidr} into more than 2^20 ranges`);
  }
  const rangeSize = 2 ** (32 - mask);
  const capacity = 2 ** (mask - cluster.prefix);
  const format = (i: number) => `${formatIp(cluster.start + i * rangeSize)}/${mask}`;

  /** range index -> holder */
  const holder = new Map<number, string>();
  /** node -> range indexes */
  const holdings = new Map<string, Set<number>>();
  /** Where the next search starts: a freed range is not handed out again at once. */
  let next = 0;

  /** The node ranges a CIDR overlaps (none when it lies outside the cluster range). */
  function indexesOf(cidr: string): number[] {
    let r: Range;
    try {
      r = parseCidr(cidr);
    } catch {
      return [];
    }
    const lo = Math.max(r.start, cluster.start);
    const hi = Math.min(r.start + r.size, cluster.start + cluster.size);
    if (lo >= hi) return [];
    const first = Math.floor((lo - cluster.start) / rangeSize);
    const last = Math.floor((hi - 1 - cluster.start) / rangeSize);
    const out: number[] = [];
    for (let i = first; i <= last; i++) out.push(i);
    return out;
  }

  function take(node: string, i: number): void {
    holder.set(i, node);
    let set = holdings.get(node);
    if (!set) holdings.set(node, (set = new Set()));
    set.add(i);
  }

  function release(node: string): void {
    for (const i of holdings.get(node) ?? []) if (holder.get(i) === node) holder.delete(i);
    holdings.delete(node);
  }

  return {
    clusterCidr: `${formatIp(cluster.start)}/${cluster.prefix}`,
    capacity,
    observe(node, cidrs) {
      const wanted = new Set(cidrs.flatMap(indexesOf));
      const clashes: string[] = [];
      for (const i of holdings.get(node) ?? []) {
        if (!wanted.has(i) && holder.get(i) === node) holder.delete(i);
      }
      holdings.delete(node);
      for (const i of wanted) {
        const other = holder.get(i);
        if (other !== undefined && other !== node) clashes.push(`${format(i)} (also ${other})`);
        take(node, i);
      }
      return clashes;
    },
    allocate(node) {
      const held = holdings.get(node);
      if (held && held.size > 0) return format(Math.min(...held));
      for (let n = 0; n < capacity; n++) {
        const i = (next + n) % capacity;
        if (holder.has(i)) continue;
        take(node, i);
        next = (i + 1) % capacity;
        return format(i);
      }
      return undefined;
    },
    release,
    heldBy: (node) => [...(holdings.get(node) ?? [])].sort((a, b) => a - b).map(format),
    used: () => holder.size,
  };
}
