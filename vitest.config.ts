import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration tests share one broker, registry and ClickHouse: the global setup provisions them once.
    testTimeout: 30_000,
    hookTimeout: 180_000,
    pool: "forks",
  },
});
