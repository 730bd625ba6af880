// Connection pooling against real sshds: many commands share few connections, sshd's
// session limit is respected, broken connections are replaced, and connection failures are
// classified for Temporal's retry policy.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureKeyPair } from '../lab/sshd';
import { SshPool } from '../activities/ssh/pool';
import { SshLab, freePort, type LabNode } from './helpers/sshLab';
import { failureOf } from './helpers/failures';

const lab = new SshLab();
let node: LabNode;

beforeAll(async () => {
  // OpenSSH's default session limit, which the lab otherwise raises.
  node = await lab.node('compute1', '127.0.14.1', { maxSessions: 10 });
});

afterAll(() => lab.cleanup());

function acceptedLogins(n: LabNode): number {
  return (readFileSync(join(n.sshd.dir, 'sshd.log'), 'utf8').match(/Accepted publickey/g) ?? []).length;
}

describe('SshPool concurrency and reuse', () => {
  it('runs 60 commands at once on one node within MaxSessions 10, over at most 4 connections', async () => {
    const pool = new SshPool();
    const loginsBefore = acceptedLogins(node);
    try {
      const started = Date.now();
      const running = Array.from({ length: 60 }, (_, i) => pool.run(node.target(), `sleep 0.3; echo "command ${i}"`));
      await new Promise((resolve) => setTimeout(resolve, 150));
      const during = pool.stats();
      const results = await Promise.all(running);
      const wallMs = Date.now() - started;
      console.log(
        `60 concurrent commands (sleep 0.3 each) took ${wallMs} ms; stats while running: ${JSON.stringify(during)}, after: ${JSON.stringify(pool.stats())}`,
      );

      results.forEach((r, i) => expect(r).toMatchObject({ exitCode: 0, stdout: `command ${i}\n` }));
      expect(during.commandsRunning).toBeLessThanOrEqual(32);
      expect(during.commandsRunning + during.commandsQueued).toBe(60);
      const after = pool.stats();
      expect(after.connectionsOpened).toBeLessThanOrEqual(4);
      expect(after).toMatchObject({ commandsRunning: 0, commandsQueued: 0 });

      // Later commands reuse the open connections: no new logins on the node.
      for (let i = 0; i < 5; i++) await pool.run(node.target(), 'true');
      expect(pool.stats().connectionsOpened).toBe(after.connectionsOpened);
      expect(acceptedLogins(node) - loginsBefore).toBe(after.connectionsOpened);
    } finally {
      await pool.close();
    }
  });

  it('adapts to a node whose MaxSessions is below the pool’s per-connection cap', async () => {
    const strict = await lab.node('strict', '127.0.14.2', { maxSessions: 3 });
    const pool = new SshPool({ maxConnectionsPerHost: 2, maxChannelsPerConnection: 8 });
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => pool.run(strict.target(), `sleep 0.2; echo ${i}`)),
      );
      results.forEach((r, i) => expect(r.stdout).toBe(`${i}\n`));
      const stats = pool.stats();
      expect(stats.connectionsOpened).toBeLessThanOrEqual(2);
      expect(stats.sessionsRefused).toBeGreaterThan(0);
    } finally {
      await pool.close();
    }
  });

  it('reconnects after the node’s sshd is stopped and started again', async () => {
    const pool = new SshPool();
    try {
      await pool.run(node.target(), 'true');
      expect(pool.stats().connectionsOpened).toBe(1);
      await node.restart();
      const r = await pool.run(node.target(), 'echo back');
      expect(r.stdout).toBe('back\n');
      expect(pool.stats().connectionsOpened).toBe(2);
    } finally {
      await pool.close();
    }
  });

  it('closes idle connections and stops queued commands that are cancelled', async () => {
    const pool = new SshPool({ maxConnectionsPerHost: 1, maxChannelsPerConnection: 1, idleTimeoutMs: 300 });
    try {
      const first = pool.run(node.target(), 'sleep 0.5; echo first');
      const controller = new AbortController();
      const queued = pool.run(node.target(), `touch ${node.home}/queued-ran`, { signal: controller.signal });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(pool.stats().commandsQueued).toBe(1);
      controller.abort(new Error('step cancelled'));
      await expect(queued).rejects.toThrow('step cancelled');
      expect((await first).stdout).toBe('first\n');
      expect((await pool.run(node.target(), `test -e ${node.home}/queued-ran; echo $?`)).stdout).toBe('1\n');

      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(pool.stats().connectionsOpen).toBe(0);
    } finally {
      await pool.close();
    }
  });
});

describe('connection failures', () => {
  it('reports connection refused as retryable, naming node and port', async () => {
    const port = await freePort('127.0.14.9');
    const pool = new SshPool();
    try {
      const failure = await failureOf(pool.run(node.target({ node: 'gone1', host: '127.0.14.9', port }), 'true'));
      expect(failure.nonRetryable).toBe(false);
      expect(failure.type).toBe('SshConnectFailed');
      expect(failure.message).toContain(`gone1 (127.0.14.9:${port})`);
      expect(failure.message).toContain('connection refused');
    } finally {
      await pool.close();
    }
  });

  it('gives up on a frozen sshd after the connect timeout', async () => {
    const frozen = await lab.node('frozen', '127.0.14.3');
    const pool = new SshPool({ maxConnectionsPerHost: 1, maxChannelsPerConnection: 1 });
    process.kill(frozen.sshd.pid, 'SIGSTOP');
    try {
      const started = Date.now();
      // The queued commands fail with the first connection instead of each waiting its turn.
      const [failure, ...queued] = await Promise.all(
        [1, 2, 3].map(() => failureOf(pool.run(frozen.target({ connectTimeoutMs: 1000 }), 'true'))),
      );
      const elapsed = Date.now() - started;
      for (const other of queued) expect(other.message).toBe(failure.message);
      expect(elapsed).toBeGreaterThanOrEqual(900);
      expect(elapsed).toBeLessThan(2500);
      expect(failure.nonRetryable).toBe(false);
      expect(failure.message).toContain(`frozen (127.0.14.3:${frozen.sshd.port})`);
      expect(failure.message).toContain('no SSH handshake within 1000 ms');
    } finally {
      process.kill(frozen.sshd.pid, 'SIGCONT');
      await pool.close();
    }
  });

  it('fails non-retryably when the node refuses our key', async () => {
    const stranger = ensureKeyPair(join(lab.root, 'stranger', 'id_ed25519'));
    const pool = new SshPool();
    try {
      const failure = await failureOf(pool.run(node.target({ privateKeyPath: stranger.privateKeyPath }), 'true'));
      expect(failure.type).toBe('SshAuthFailed');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toContain(`compute1 (127.0.14.1:${node.sshd.port})`);
      expect(failure.message).toContain(stranger.privateKeyPath);
    } finally {
      await pool.close();
    }
  });

  it('fails non-retryably, naming the path, when the private key file is missing', async () => {
    const pool = new SshPool();
    try {
      const missing = join(lab.root, 'no-such-key');
      const failure = await failureOf(pool.run(node.target({ privateKeyPath: missing }), 'true'));
      expect(failure.type).toBe('SshPrivateKeyUnreadable');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toContain(missing);
    } finally {
      await pool.close();
    }
  });
});
