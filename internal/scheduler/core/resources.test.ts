import { describe, expect, it } from "vitest";
import { makePod } from "./testing.ts";
import { DEFAULT_NONZERO_CPU_MILLI, DEFAULT_NONZERO_MEMORY, nonZeroRequests, podRequests, toAmount } from "./resources.ts";

describe("resource amounts", () => {
  it("counts cpu in millicores and everything else in whole units", () => {
    expect(toAmount("cpu", "1.5")).toBe(1500);
    expect(toAmount("cpu", "250m")).toBe(250);
    expect(toAmount("memory", "1Gi")).toBe(2 ** 30);
    expect(toAmount("memory", "1.5k")).toBe(1500);
    expect(toAmount("memory", "100m")).toBe(1); // rounded up like Value()
    expect(toAmount("example.com/gpu", "2")).toBe(2);
    expect(toAmount("cpu", "nonsense")).toBe(0);
  });

  it("keeps cpu and other resources apart when it remembers a string's amount, and stays right past its bound", () => {
    for (let round = 0; round < 2; round++) {
      expect(toAmount("cpu", "100m")).toBe(100);
      expect(toAmount("memory", "100m")).toBe(1);
      expect(toAmount("cpu", "2")).toBe(2000);
      expect(toAmount("example.com/gpu", "2")).toBe(2);
    }
    for (let i = 1; i <= 3000; i++) expect(toAmount("memory", `${i}Mi`)).toBe(i * 2 ** 20);
    expect(toAmount("cpu", "100m")).toBe(100);
  });

  it("sums containers and takes the larger of that and the biggest init container", () => {
    const pod = makePod("p", { cpu: "500m", memory: "1Gi", init: { cpu: "2", memory: "64Mi" } });
    pod.spec!.containers.push({ ...pod.spec!.containers[0], name: "side" });
    expect(podRequests(pod.spec)).toEqual({ cpu: 2000, memory: 2 * 2 ** 30 });
  });

  it("ignores zero requests and a 'pods' request", () => {
    expect(podRequests(makePod("p", { cpu: "0", extra: { pods: "3" } }).spec)).toEqual({});
  });

  it("gives containers without requests the non-zero defaults, for scoring", () => {
    expect(nonZeroRequests(makePod("p").spec)).toEqual({ cpu: DEFAULT_NONZERO_CPU_MILLI, memory: DEFAULT_NONZERO_MEMORY });
    expect(nonZeroRequests(makePod("p", { cpu: "1" }).spec)).toEqual({ cpu: 1000, memory: DEFAULT_NONZERO_MEMORY });
  });
});
