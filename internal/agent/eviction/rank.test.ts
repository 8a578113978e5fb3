import { describe, expect, it } from "vitest";
import { testPod } from "../testing.ts";
import { podRequest, rankForEviction } from "./rank.ts";

const Mi = 1024n * 1024n;

function pod(name: string, priority: number, memoryRequest?: string) {
  const p = testPod(name, { priority, containers: [{ name: "app", resources: memoryRequest ? ({ requests: { memory: memoryRequest } } as any) : undefined }] });
  return p;
}

describe("rankForEviction", () => {
  it("puts pods above their requests first, then lower priority, then the larger excess", () => {
    const order = rankForEviction(
      [
        { pod: pod("within-low-prio", -10, "500Mi"), usage: 400n * Mi }, // within its request
        { pod: pod("above-high-prio", 1000, "100Mi"), usage: 300n * Mi },
        { pod: pod("above-small", 0, "100Mi"), usage: 150n * Mi },
        { pod: pod("above-big", 0, "100Mi"), usage: 900n * Mi },
        { pod: pod("best-effort", 0), usage: 10n * Mi },
      ],
      "memory",
    ).map((u) => u.pod.metadata!.name);
    expect(order).toEqual(["above-big", "above-small", "best-effort", "above-high-prio", "within-low-prio"]);
  });

  it("sums the containers' requests, falling back to the limit like the apiserver's defaulting", () => {
    const p = testPod("two", {
      containers: [
        { name: "a", resources: { requests: { memory: "64Mi" } } as any },
        { name: "b", resources: { limits: { memory: "32Mi" } } as any },
      ],
    });
    expect(podRequest(p, "memory")).toBe(96n * Mi);
    expect(podRequest(p, "ephemeral-storage")).toBe(0n);
  });
});
