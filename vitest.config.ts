import { defineConfig } from 'vitest/config';

// CPU suite: what CI runs. The GPU suite (test/gpu) has its own config.
// The tests that time a client against a server's scripted delays (within a few ms) run first, one file at a
// time, so that no other test file loads the cores while they measure. The Docker build-steps test compiles
// the addon: it runs after the rest.
const timing = ['test/bench/latency.test.ts', 'test/bench/arrivals.test.ts', 'test/bench/prefill-curve.test.ts'];
const afterTheRest = ['test/scripts/docker-build-steps.test.ts'];

export default defineConfig({
  test: {
    exclude: ['test/gpu/**', 'node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    setupFiles: ['test/setup/fast-check.ts'],
    projects: [
      { extends: true, test: { name: 'timing', include: timing, fileParallelism: false, sequence: { groupOrder: 0 } } },
      {
        extends: true,
        test: {
          name: 'cpu',
          include: ['test/**/*.test.ts'],
          exclude: ['test/gpu/**', 'node_modules/**', ...timing, ...afterTheRest],
          sequence: { groupOrder: 1 },
        },
      },
      { extends: true, test: { name: 'build', include: afterTheRest, sequence: { groupOrder: 2 } } },
    ],
  },
});
