import { describe, expect, it } from "vitest";
import { containerLogOptions } from "./agent.ts";

const flags = (size: string, files: string) => ({ "container-log-max-size": size, "container-log-max-files": files });

describe("--container-log-max-size and --container-log-max-files", () => {
  it("take kubelet's defaults and quantities", () => {
    expect(containerLogOptions(flags("10Mi", "5"))).toEqual({ maxSizeBytes: 10 * 1024 * 1024, maxFiles: 5 });
    expect(containerLogOptions(flags("100k", "2"))).toEqual({ maxSizeBytes: 100_000, maxFiles: 2 });
  });

  it("refuse what cannot work, naming the flag and what to give", () => {
    expect(() => containerLogOptions(flags("lots", "5"))).toThrow(/^--container-log-max-size must be a size such as 10Mi, got "lots"/);
    expect(() => containerLogOptions(flags("1Ki", "5"))).toThrow('--container-log-max-size must be at least 32Ki, got "1Ki"');
    expect(() => containerLogOptions(flags("10Mi", "1"))).toThrow('--container-log-max-files must be an integer of at least 2, got "1"');
    expect(() => containerLogOptions(flags("10Mi", "2.5"))).toThrow(/--container-log-max-files must be an integer/);
  });
});
