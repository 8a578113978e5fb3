import { afterEach, describe, expect, it, vi } from "vitest";
import { quietKnownWarnings } from "./node-warnings.ts";

describe("quietKnownWarnings", () => {
  const original = process.emitWarning;
  afterEach(() => {
    process.emitWarning = original;
  });

  it("drops DEP0123 however it is raised and passes every other warning on", () => {
    const seen = vi.fn();
    process.emitWarning = seen as unknown as typeof process.emitWarning;
    quietKnownWarnings();
    process.emitWarning("Setting the TLS ServerName to an IP address is not permitted", "DeprecationWarning", "DEP0123");
    process.emitWarning("Setting the TLS ServerName to an IP address is not permitted", { type: "DeprecationWarning", code: "DEP0123" });
    expect(seen).not.toHaveBeenCalled();
    process.emitWarning("Buffer() is deprecated", "DeprecationWarning", "DEP0005");
    process.emitWarning("something else");
    expect(seen).toHaveBeenCalledTimes(2);
    expect(seen.mock.calls[0]).toEqual(["Buffer() is deprecated", "DeprecationWarning", "DEP0005"]);
  });
});
