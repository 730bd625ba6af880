import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The SDK's native bridge (Rust core via N-API) misbehaves in worker threads; child
    // processes give each test file its own runtime.
    pool: 'forks',
    globalSetup: ['test/globalSetup.ts'],
    // One file at a time (vitest's default on two cores). Two at once was tried: the lab tests
    // share the shared server's workflow ids (nova-upgrade-lab), so two of them collide.
    // Two cores shared by a Temporal server, SDK workers and sshd-based lab nodes: be patient.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
  },
});
