// The worker-wide caps of the SSH pool: however many nodes a compute batch touches at once,
// no more than `maxSessions` commands run and no more than `maxHandshakes` handshakes are in
// flight. The overlap is measured on the nodes' side, from the commands' own timestamps.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshPool } from '../activities/ssh/pool';
import { SshLab, type LabNode } from './helpers/sshLab';

const lab = new SshLab();
const nodes: LabNode[] = [];

beforeAll(async () => {
  for (let i = 1; i <= 8; i++) nodes.push(await lab.node(`cap${i}`, `127.0.40.${i}`));
}, 60_000);

afterAll(() => lab.cleanup());

/** The most commands whose [start, end] intervals overlap, from "start <ns>" / "end <ns>" lines. */
function maxOverlap(log: string): number {
  const events = log
    .trim()
    .split('\n')
    .map((l) => l.split(' '))
    .map(([kind, ns]) => ({ t: BigInt(ns!), d: kind === 'start' ? 1 : -1 }))
    .sort((a, b) => (a.t === b.t ? a.d - b.d : a.t < b.t ? -1 : 1));
  let now = 0;
  let peak = 0;
  for (const e of events) peak = Math.max(peak, (now += e.d));
  return peak;
}

describe('SshPool worker-wide caps', () => {
  it('runs 48 commands over 8 nodes with at most 5 at once and 2 handshakes in flight', async () => {
    const log = join(lab.root, 'overlap.log');
    const pool = new SshPool({ maxSessions: 5, maxHandshakes: 2 });
    try {
      const running = Array.from({ length: 48 }, (_, i) =>
        pool.run(
          nodes[i % nodes.length]!.target(),
          `echo "start $(date +%s%N)" >> ${log}; sleep 0.2; echo "end $(date +%s%N)" >> ${log}; echo ${i}`,
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      const during = pool.stats();
      const results = await Promise.all(running);
      results.forEach((r, i) => expect(r.stdout).toBe(`${i}\n`));
      const stats = pool.stats();
      const overlap = maxOverlap(readFileSync(log, 'utf8'));
      console.log(`caps 5/2: overlap seen on the nodes ${overlap}; stats ${JSON.stringify(stats)}`);
      expect(during.sessionsQueued).toBeGreaterThan(0);
      expect(overlap).toBeLessThanOrEqual(5);
      // The cap is reached, not just respected: the commands did run side by side.
      expect(overlap).toBeGreaterThanOrEqual(3);
      expect(stats.peakHandshakes).toBeLessThanOrEqual(2);
      expect(stats.connectionsOpened).toBe(8);
    } finally {
      await pool.close();
    }
  });

  it('an uncapped pool overlaps more than the cap above on the same nodes', async () => {
    const log = join(lab.root, 'uncapped.log');
    const pool = new SshPool();
    try {
      await Promise.all(
        Array.from({ length: 48 }, (_, i) =>
          pool.run(
            nodes[i % nodes.length]!.target(),
            `echo "start $(date +%s%N)" >> ${log}; sleep 0.2; echo "end $(date +%s%N)" >> ${log}`,
          ),
        ),
      );
      expect(maxOverlap(readFileSync(log, 'utf8'))).toBeGreaterThan(5);
    } finally {
      await pool.close();
    }
  });

  it('keeps at most maxIdleConnections idle, closing the least recently used one above it', async () => {
    const pool = new SshPool({ maxIdleConnections: 3 });
    try {
      // One command on each of the 8 nodes, one after another: each leaves its connection idle.
      for (const n of nodes) expect((await pool.run(n.target(), 'echo ok')).stdout).toBe('ok\n');
      expect(pool.stats()).toMatchObject({
        connectionsOpened: 8,
        connectionsOpen: 3,
        connectionsIdle: 3,
        idleEvicted: 5,
      });
      // cap6..cap8 were used last and are still open: no new handshake for them.
      await pool.run(nodes[5]!.target(), 'true');
      await pool.run(nodes[7]!.target(), 'true');
      expect(pool.stats().connectionsOpened).toBe(8);
      // cap1 was evicted: it costs a handshake, and evicts cap7, now the least recently used.
      await pool.run(nodes[0]!.target(), 'true');
      expect(pool.stats()).toMatchObject({ connectionsOpened: 9, connectionsOpen: 3, idleEvicted: 6 });
      await pool.run(nodes[6]!.target(), 'true');
      expect(pool.stats().connectionsOpened).toBe(10);
      // Busy connections are never evicted: 8 commands at once keep 8 open, then 3 stay.
      await Promise.all(nodes.map((n) => pool.run(n.target(), 'sleep 0.3')));
      expect(pool.stats()).toMatchObject({ connectionsOpen: 3, connectionsIdle: 3 });
    } finally {
      await pool.close();
    }
  });
});
