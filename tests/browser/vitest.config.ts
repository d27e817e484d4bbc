import { defineConfig } from 'vitest/config';

// One browser and one server per test file; files run one after another (the machine has two
// cores shared with the server and chromium), tests in a file in order.
export default defineConfig({
  test: {
    include: ['*.test.ts'],
    fileParallelism: false,
    maxWorkers: 1,
    sequence: { concurrent: false, shuffle: false },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default', ['json', { outputFile: 'out/vitest.json' }]],
  },
});
