import { defineConfig } from 'vitest/config';

// CPU suite: what CI runs. The GPU suite (test/gpu) has its own config.
// The Docker build-steps test compiles the addon: it runs after the rest, so that its compile does not load
// the cores while the latency tests measure.
const afterTheRest = ['test/scripts/docker-build-steps.test.ts'];

export default defineConfig({
  test: {
    exclude: ['test/gpu/**', 'node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'cpu',
          include: ['test/**/*.test.ts'],
          exclude: ['test/gpu/**', 'node_modules/**', ...afterTheRest],
          sequence: { groupOrder: 0 },
        },
      },
      { extends: true, test: { name: 'build', include: afterTheRest, sequence: { groupOrder: 1 } } },
    ],
  },
});
