import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The SDK's native bridge (Rust core via N-API) misbehaves in worker threads; child
    // processes give each test file its own runtime.
    pool: 'forks',
    globalSetup: ['test/globalSetup.ts'],
    // Two files at once, although the machine has two cores: most of a lab test's time is spent
    // waiting (HAProxy checks, heartbeat timeouts, a frozen worker), so one core per file left
    // the CPU idle. Every file has its own loopback subnet (docs/contributing.md), its own
    // state directories and its own task queues, so two never meet.
    maxWorkers: 2,
    // Two cores shared by a Temporal server, SDK workers and sshd-based lab nodes: be patient.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
  },
});
