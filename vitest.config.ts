import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    pool: "forks",
    projects: [
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      {
        // The engine's tests again on the LMDB person store (test/fixtures/person-store.ts).
        test: {
          name: "engine-lmdb",
          include: [
            "test/unit/{detectors,order-independence,excessive-dispensing,evidence-bounds,rule-tables,check,check-rules}.test.ts",
          ],
          env: { FUNDGUARD_TEST_PERSON_STORE: "lmdb" },
          // Nearly every event reads its person back from disk: slower by design, not a timing test.
          testTimeout: 60_000,
        },
      },
      {
        // Tests against the real broker, registry and ClickHouse share the services the global setup provisions.
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts", "test/e2e/**/*.test.ts"],
          globalSetup: ["test/setup/services.ts"],
          testTimeout: 180_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
