// A DNS server over UDP and TCP on one address and port, authoritative for the cluster domain
// (zone.ts). Names outside it go to the upstream when there is one, else get REFUSED at once.
// Packets are parsed and written by dns-packet; sockets are node:dgram and node:net.
import dgram from "node:dgram";
import net from "node:net";
import * as packet from "dns-packet";
import type { Answer, DecodedPacket, OptAnswer, Packet, Question } from "dns-packet";
import type { Zone } from "./zone.ts";

export interface DnsServerOptions {
  zone: Zone;
  host: string;
  /** 0 picks a free port (the same for UDP and TCP). */
  port: number;
  /** "IP" or "IP:PORT" of a resolver for names outside the cluster domain (over UDP). */
  upstream?: string;
  /** How long an upstream gets to answer before the client gets SERVFAIL. Default 2000 ms. */
  upstreamTimeoutMs?: number;
  log?: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void };
}

export interface DnsServer {
  host: string;
  port: number;
  close(): Promise<void>;
}

/** Classic DNS over UDP: 512 bytes unless the client's EDNS record allows more. */
const UDP_DEFAULT = 512;
const UDP_MAX = 4096;
const TCP_IDLE_MS = 10_000;

const flagsOf = (q: DecodedPacket) => (q.flags ?? 0) & packet.RECURSION_DESIRED;
const RCODE: Record<string, number> = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };

const ednsOf = (q: DecodedPacket) => (q.additionals ?? []).find((x): x is OptAnswer => x.type === "OPT");
const ourOpt: OptAnswer = { type: "OPT", name: ".", udpPayloadSize: UDP_MAX, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] };

export function parseUpstream(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(s.trim());
  const host = m?.[1] ?? m?.[2] ?? "";
  const port = Number(m?.[3] ?? 53);
  if (!m || net.isIP(host) === 0 || port < 1 || port > 65535) throw new Error(`--dns-upstream must be IP or IP:PORT, got "${s}"`);
  return { host, port };
}

export async function startDnsServer(opts: DnsServerOptions): Promise<DnsServer> {
  const { zone } = opts;
  const upstream = opts.upstream ? parseUpstream(opts.upstream) : undefined;
  const upstreamTimeoutMs = opts.upstreamTimeoutMs ?? 2000;

  function reply(q: DecodedPacket, rcode: number, body: Pick<Packet, "answers" | "authorities" | "additionals"> = {}, extraFlags = 0): Packet {
    return {
      type: "response",
      id: q.id,
      flags: flagsOf(q) | extraFlags | (upstream ? packet.RECURSION_AVAILABLE : 0) | rcode,
      questions: q.questions ?? [],
      answers: body.answers ?? [],
      authorities: body.authorities ?? [],
      // An EDNS query gets an OPT record back, saying how large a UDP answer we send.
      additionals: [...(body.additionals ?? []), ...(ednsOf(q) ? [ourOpt] : [])],
    };
  }

  /** Our answer to a query, or the upstream's raw reply for names outside the cluster domain. */
  async function handle(q: DecodedPacket, raw: Buffer, overUdp: boolean): Promise<Packet | Buffer> {
    if (q.type !== "query") return reply(q, RCODE.FORMERR);
    const opcode = ((q.flags ?? 0) >> 11) & 0xf;
    if (opcode !== 0) return reply(q, RCODE.NOTIMP);
    const questions = q.questions ?? [];
    if (questions.length !== 1) return reply(q, RCODE.FORMERR);
    const question: Question = questions[0];
    if (!zone.contains(question.name)) {
      if (!upstream) return reply(q, RCODE.REFUSED);
      try {
        // The same transport the client used: a TCP client is one whose UDP answer was truncated.
        return await (overUdp ? forward(raw) : forwardTcp(raw));
      } catch (err) {
        opts.log?.debug({ name: question.name, err: String(err) }, "upstream did not answer");
        return reply(q, RCODE.SERVFAIL);
      }
    }
    if (question.class !== "IN" && question.class !== "ANY") return reply(q, RCODE.REFUSED);
    const ans = zone.answer(question.name, question.type);
    return reply(q, RCODE[ans.rcode], ans, packet.AUTHORITATIVE_ANSWER);
  }

  function forward(raw: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const sock = dgram.createSocket(net.isIPv6(upstream!.host) ? "udp6" : "udp4");
      const id = raw.readUInt16BE(0);
      const done = (err?: Error, msg?: Buffer) => {
        clearTimeout(timer);
        sock.close();
        if (err) reject(err);
        else resolve(msg!);
      };
      const timer = setTimeout(() => done(new Error(`no answer from ${upstream!.host}:${upstream!.port} in ${upstreamTimeoutMs} ms`)), upstreamTimeoutMs);
      sock.on("error", (err) => done(err));
      // Only a reply to our query counts (same id).
      sock.on("message", (msg) => msg.length >= 2 && msg.readUInt16BE(0) === id && done(undefined, msg));
      sock.send(raw, upstream!.port, upstream!.host);
    });
  }

  function forwardTcp(raw: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(upstream!.port, upstream!.host);
      let buf = Buffer.alloc(0);
      const done = (err?: Error, msg?: Buffer) => {
        clearTimeout(timer);
        sock.destroy();
        if (err) reject(err);
        else resolve(msg!);
      };
      const timer = setTimeout(() => done(new Error(`no answer from ${upstream!.host}:${upstream!.port} in ${upstreamTimeoutMs} ms`)), upstreamTimeoutMs);
      sock.on("error", (err) => done(err));
      sock.on("close", () => done(new Error("upstream closed the connection")));
      sock.on("data", (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(undefined, Buffer.from(buf.subarray(2, 2 + buf.readUInt16BE(0))));
      });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(raw.length);
      sock.write(Buffer.concat([len, raw]));
    });
  }

  function udpLimit(q: DecodedPacket): number {
    const opt = ednsOf(q);
    return opt ? Math.min(Math.max(opt.udpPayloadSize, UDP_DEFAULT), UDP_MAX) : UDP_DEFAULT;
  }

  async function respond(raw: Buffer, overUdp: boolean): Promise<Buffer | undefined> {
    let q: DecodedPacket;
    try {
      q = packet.decode(raw);
    } catch {
      // Not a DNS message: a FORMERR needs at least the id to be useful.
      if (raw.length < 12) return undefined;
      return packet.encode({ type: "response", id: raw.readUInt16BE(0), flags: RCODE.FORMERR, questions: [], answers: [] });
    }
    const res = await handle(q, raw, overUdp);
    if (Buffer.isBuffer(res)) return res;
    let out = packet.encode(res);
    if (overUdp && out.length > udpLimit(q)) {
      // Too big for UDP: the question alone with TC set tells the client to ask again over TCP.
      out = packet.encode({ ...res, flags: (res.flags ?? 0) | packet.TRUNCATED_RESPONSE, answers: [], authorities: [], additionals: (res.additionals ?? []).filter((a: Answer) => a.type === "OPT") });
    }
    return out;
  }

  const udp = dgram.createSocket(net.isIPv6(opts.host) ? "udp6" : "udp4");
  udp.on("message", (msg, rinfo) => {
    void respond(msg, true).then(
      (out) => out && udp.send(out, rinfo.port, rinfo.address),
      (err) => opts.log?.warn({ err: String(err) }, "dns query failed"),
    );
  });

  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((sock) => {
    sockets.add(sock);
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => sock.destroy());
    let buf = Buffer.alloc(0);
    sock.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      // Each message is prefixed with its 2-byte length; several may come on one connection.
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        void respond(Buffer.from(msg), false).then(
          (out) => {
            if (!out || sock.destroyed) return;
            const len = Buffer.alloc(2);
            len.writeUInt16BE(out.length);
            sock.write(Buffer.concat([len, out]));
          },
          (err) => opts.log?.warn({ err: String(err) }, "dns query failed"),
        );
      }
    });
  });

  // TCP first: with port 0 it picks the port, and UDP binds the same one.
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(opts.port, opts.host, () => resolve());
  });
  const port = (tcp.address() as net.AddressInfo).port;
  try {
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(port, opts.host, () => resolve());
    });
  } catch (err) {
    await new Promise((r) => tcp.close(r));
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    host: opts.host,
    port,
    close() {
      closing ??= (async () => {
        for (const s of sockets) s.destroy();
        await Promise.all([new Promise((r) => tcp.close(r)), new Promise<void>((r) => udp.close(() => r()))]);
      })();
      return closing;
    },
  };
}
