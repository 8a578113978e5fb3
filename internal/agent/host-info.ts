// Facts about the machine the agent reports in its Node: cores, memory, addresses, kernel, OS.
import { readFileSync } from "node:fs";
import os from "node:os";
import { formatQuantity, quantityFromValue } from "../api/quantity.ts";

export interface HostInfo {
  cpu: string;
  memory: string;
  hostname: string;
  /** The first non-loopback IPv4 address, or 127.0.0.1. */
  internalIP: string;
  kernelVersion: string;
  osImage: string;
  operatingSystem: string;
  architecture: string;
  machineId: string;
  bootId: string;
}

/** Node's process.arch in Go/OCI spelling, as Kubernetes labels it. */
export function goArch(arch: string = process.arch): string {
  const map: Record<string, string> = { x64: "amd64", ia32: "386", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  return map[arch] ?? arch;
}

function readTrimmed(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "";
  }
}

export function osImage(): string {
  const text = readTrimmed("/etc/os-release");
  const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text);
  return m?.[1] ?? `${os.type()} ${os.release()}`;
}

export function firstInternalIPv4(): string {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}

/** Memory as Kubernetes reports it: Ki when the byte count allows ("16331468Ki"). */
export function memoryQuantity(bytes: number): string {
  return formatQuantity(quantityFromValue(bytes, "BinarySI"));
}

export function hostInfo(): HostInfo {
  return {
    cpu: String(os.availableParallelism()),
    memory: memoryQuantity(os.totalmem()),
    hostname: os.hostname(),
    internalIP: firstInternalIPv4(),
    kernelVersion: os.release(),
    osImage: osImage(),
    operatingSystem: process.platform,
    architecture: goArch(),
    machineId: readTrimmed("/etc/machine-id"),
    bootId: readTrimmed("/proc/sys/kernel/random/boot_id"),
  };
}
