import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    // Tests spawn real processes; two workers fit the 2-core CI machine.
    maxWorkers: 2,
  },
});
