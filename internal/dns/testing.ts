// A minimal DNS client for tests: one query over UDP or TCP to a server on loopback.
import dgram from "node:dgram";
import net from "node:net";
import * as packet from "dns-packet";
import type { DecodedPacket, Packet } from "dns-packet";

/** dns-packet decodes the rcode too; its types leave it out. */
export type Reply = DecodedPacket & { rcode: string };

export interface QueryOptions {
  tcp?: boolean;
  /** Advertise this EDNS UDP payload size. */
  edns?: number;
  timeoutMs?: number;
  /** The server's address; default 127.0.0.1. */
  host?: string;
}

export function query(port: number, name: string, type: string, opts: QueryOptions = {}): Promise<Reply> {
  const q: Packet = {
    type: "query",
    id: Math.floor(Math.random() * 65535),
    flags: packet.RECURSION_DESIRED,
    questions: [{ type: type as any, name, class: "IN" }],
    additionals: opts.edns ? [{ type: "OPT", name: ".", udpPayloadSize: opts.edns, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
  };
  return opts.tcp ? sendTcp(port, packet.encode(q), opts.timeoutMs, opts.host) : sendUdp(port, packet.encode(q), opts.timeoutMs, opts.host);
}

export function sendUdp(port: number, msg: Buffer, timeoutMs = 3000, host = "127.0.0.1"): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket("udp4");
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error("no UDP answer"));
    }, timeoutMs);
    sock.on("message", (m) => {
      clearTimeout(timer);
      sock.close();
      resolve(packet.decode(m) as Reply);
    });
    sock.send(msg, port, host);
  });
}

export function sendTcp(port: number, msg: Buffer, timeoutMs = 3000, host = "127.0.0.1"): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, host);
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error("no TCP answer"));
    }, timeoutMs);
    sock.on("error", reject);
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        clearTimeout(timer);
        sock.destroy();
        resolve(packet.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))) as Reply);
      }
    });
    const len = Buffer.alloc(2);
    len.writeUInt16BE(msg.length);
    sock.write(Buffer.concat([len, msg]));
  });
}
