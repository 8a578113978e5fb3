// IPv4 addresses as unsigned 32-bit numbers, for CIDR arithmetic (pod CIDRs, Service ranges).

/** "10.0.0.1" → its number; undefined for anything that is not a dotted-quad IPv4 address. */
export function parseIPv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

/** The dotted-quad form of an address number. */
export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

export interface Ipv4Cidr {
  network: number;
  prefix: number;
  /** First and last usable host addresses (without network and broadcast). */
  first: number;
  last: number;
}

/**
 * "10.88.0.0/24" with a prefix in [minPrefix, maxPrefix]; on failure the reason: not such a CIDR
 * ("format"), or host bits set ("hostBits", with the network the user probably meant).
 */
export function parseIPv4Cidr(s: string, minPrefix = 8, maxPrefix = 30): Ipv4Cidr | { error: "format" } | { error: "hostBits"; meant: string } {
  const [addr, len, extra] = s.split("/");
  const ip = parseIPv4(addr ?? "");
  const prefix = Number(len);
  if (ip === undefined || extra !== undefined || !/^\d+$/.test(len ?? "") || prefix < minPrefix || prefix > maxPrefix) return { error: "format" };
  const mask = (0xffffffff << (32 - prefix)) >>> 0;
  const network = (ip & mask) >>> 0;
  if (network !== ip) return { error: "hostBits", meant: `${formatIPv4(network)}/${prefix}` };
  return { network, prefix, first: network + 1, last: ((network | ~mask) >>> 0) - 1 };
}
