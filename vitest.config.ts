import { defineConfig } from 'vitest/config';

// Integration tests share one Redis and one Docker engine on a 2-core machine: keep parallelism modest.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/redteam/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
