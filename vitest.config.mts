import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The SDK's native bridge (Rust core via N-API) misbehaves in worker threads; child
    // processes give each test file its own runtime.
    pool: 'forks',
    globalSetup: ['test/globalSetup.ts'],
    // Two cores shared by a Temporal server, SDK workers and sshd-based lab nodes: be patient.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
  },
});
