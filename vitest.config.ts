import { defineConfig } from "vitest/config";

// Two projects: fast unit tests beside the code, and tests in test/ that start real servers
// (etcd, containerd, ...). Integration tests run one file at a time: each starts its own servers
// and a 2-core machine gains nothing from running them side by side.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["internal/**/*.test.ts", "cmd/**/*.test.ts"],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
