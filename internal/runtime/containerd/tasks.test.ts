import { describe, expect, it } from "vitest";
import { signalNumber } from "./tasks.ts";

describe("signalNumber", () => {
  it("maps names with or without SIG, and numbers", () => {
    expect(signalNumber("SIGQUIT", 15)).toBe(3);
    expect(signalNumber("quit", 15)).toBe(3);
    expect(signalNumber("9", 15)).toBe(9);
  });
  it("falls back for missing or unknown names", () => {
    expect(signalNumber(undefined, 15)).toBe(15);
    expect(signalNumber("SIGNOPE", 15)).toBe(15);
  });
});
