// Detached runs against a real sshd: a retried activity reattaches to the run its dead
// predecessor started instead of starting a second copy.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { SshPool } from '../activities/ssh/pool';
import { safeRunKey } from '../activities/ssh/detached';
import { SshLab, type LabNode } from './helpers/sshLab';
import { processRunning, waitFor } from './helpers/processes';

const lab = new SshLab();
let node: LabNode;
const stateDir = '$HOME/.nova-upgrade';
const pools: SshPool[] = [];

/** Each pool stands for one worker process. */
function worker(): SshPool {
  const pool = new SshPool({ killGraceMs: 1000 });
  pools.push(pool);
  return pool;
}

const runDir = (key: string) => join(node.home, '.nova-upgrade', 'runs', safeRunKey(key));
const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
const runPid = (key: string) => Number(readFileSync(join(runDir(key), 'pid'), 'utf8').trim());

beforeAll(async () => {
  node = await lab.node('ctl1', '127.0.15.1');
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  lab.cleanup();
});

describe('runDetached', () => {
  it('reattaches after the worker dies instead of running the command again', async () => {
    const counter = join(node.home, 'counter');
    const command = `echo started >> "$HOME/counter"; sleep 2; echo "db sync finished"; exit 3`;
    const key = 'wf-42/db-sync/attempt-1';

    // Worker 1 starts the run, then dies while waiting for it.
    const first = worker();
    const abandoned = first.runDetached(node.target(), { key, command, stateDir, pollMs: 200 });
    abandoned.catch(() => undefined);
    expect(await waitFor(() => lines(counter).length === 1, 5000)).toBe(true);
    await first.close();
    await expect(abandoned).rejects.toThrow();
    expect(processRunning(runPid(key))).toBe(true);

    // Worker 2 retries the activity with the same key.
    const second = worker();
    const progress: string[] = [];
    const retried = await second.runDetached(node.target(), {
      key,
      command,
      stateDir,
      pollMs: 200,
      onProgress: (t) => progress.push(t),
    });
    expect(retried).toMatchObject({ node: 'ctl1', command, exitCode: 3, reattached: true, stderr: '' });
    expect(retried.stdout).toBe('db sync finished\n');
    expect(lines(counter)).toEqual(['started']);
    // Heartbeats while it ran, the last one with the final output.
    expect(progress.length).toBeGreaterThan(2);
    expect(progress[progress.length - 1]).toBe('db sync finished\n');

    // A third attempt after it finished gets the recorded result without waiting a poll.
    const started = Date.now();
    const third = await worker().runDetached(node.target(), { key, command, stateDir, pollMs: 5000 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(third).toMatchObject({ exitCode: 3, reattached: true, stdout: 'db sync finished\n' });
    expect(third.durationMs).toBeGreaterThanOrEqual(1000);
    expect(lines(counter)).toEqual(['started']);

    // A new key (an operator's deliberate re-run) runs the command again.
    const rerun = await second.runDetached(node.target(), {
      key: 'wf-42/db-sync/attempt-2',
      command,
      stateDir,
      pollMs: 200,
    });
    expect(rerun.exitCode).toBe(3);
    expect(rerun.reattached).toBeUndefined();
    expect(lines(counter)).toEqual(['started', 'started']);
  });

  it('leaves the run going when the worker shuts down, and kills it on a real cancellation', async () => {
    const pool = worker();
    const shutdown = new AbortController();
    const key = 'survives-shutdown';
    const waiting = pool.runDetached(node.target(), {
      key,
      command: 'sleep 1; echo done',
      stateDir,
      pollMs: 100,
      signal: shutdown.signal,
    });
    await waitFor(() => existsSync(join(runDir(key), 'pid')), 5000);
    const reason = new CancelledFailure('WORKER_SHUTDOWN');
    shutdown.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    expect(processRunning(runPid(key))).toBe(true);
    expect(
      await pool.runDetached(node.target(), { key, command: 'sleep 1; echo done', stateDir, pollMs: 100 }),
    ).toMatchObject({
      exitCode: 0,
      stdout: 'done\n',
      reattached: true,
    });

    const cancel = new AbortController();
    const marker = join(node.home, 'cancelled-marker');
    const sleepPidFile = join(node.home, 'detached-sleep.pid');
    const killed = pool.runDetached(node.target(), {
      key: 'gets-cancelled',
      command: `sleep 30 & echo $! > ${sleepPidFile}; wait; touch ${marker}`,
      stateDir,
      pollMs: 100,
      signal: cancel.signal,
    });
    await waitFor(() => existsSync(sleepPidFile), 5000);
    const groupPids = [runPid('gets-cancelled'), Number(readFileSync(sleepPidFile, 'utf8'))];
    cancel.abort(new CancelledFailure('CANCELLED'));
    await expect(killed).rejects.toThrow('CANCELLED');
    expect(await waitFor(() => groupPids.every((pid) => !processRunning(pid)), 3000)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(existsSync(marker)).toBe(false);

    // A retry with the same key learns it was stopped rather than starting it again.
    const again = await pool
      .runDetached(node.target(), { key: 'gets-cancelled', command: 'true', stateDir })
      .catch((e: unknown) => e);
    expect(again).toBeInstanceOf(ApplicationFailure);
    expect(again).toMatchObject({ type: 'SshDetachedRunCancelled', nonRetryable: true });
  });

  it('leaves the run to its successor when the attempt was superseded (NOT_FOUND after a frozen worker)', async () => {
    const pool = worker();
    const stale = new AbortController();
    const key = 'superseded-attempt';
    const command = 'sleep 1; echo finished by the successor';
    const first = pool.runDetached(node.target(), { key, command, stateDir, pollMs: 100, signal: stale.signal });
    await waitFor(() => existsSync(join(runDir(key), 'pid')), 5000);
    // What the SDK hands an attempt whose heartbeat the server no longer knows.
    const reason = new CancelledFailure('NOT_FOUND');
    stale.abort(reason);
    await expect(first).rejects.toBe(reason);
    expect(processRunning(runPid(key))).toBe(true);
    expect(existsSync(join(runDir(key), 'cancelled'))).toBe(false);
    expect(await pool.runDetached(node.target(), { key, command, stateDir, pollMs: 100 })).toMatchObject({
      exitCode: 0,
      stdout: 'finished by the successor\n',
      reattached: true,
    });
  });

  it('kills the run when it exceeds timeoutMs', async () => {
    const key = 'too-slow';
    const started = Date.now();
    const outcome = await worker()
      .runDetached(node.target(), { key, command: 'sleep 30', stateDir, pollMs: 100, timeoutMs: 600 })
      .catch((e: unknown) => e);
    expect(outcome).toMatchObject({ type: 'SshCommandTimedOut' });
    expect((outcome as Error).message).toContain('ctl1 (127.0.15.1:');
    expect(Date.now() - started).toBeLessThan(4000);
    expect(processRunning(runPid(key))).toBe(false);
  });

  it('reports a run that was claimed but died without an exit status, and does not restart it', async () => {
    const pool = worker();
    const key = 'dies-with-node';
    const counter = join(node.home, 'dies-counter');
    const command = `echo started >> ${counter}; sleep 30`;
    const waiting = pool.runDetached(node.target(), { key, command, stateDir, pollMs: 100 });
    waiting.catch(() => undefined);
    await waitFor(() => lines(counter).length === 1, 5000);
    // What a crash or power loss leaves behind: the whole group gone, no exit file.
    process.kill(-runPid(key), 'SIGKILL');

    const retry = () => pool.runDetached(node.target(), { key, command, stateDir });
    for (const attempt of [() => waiting, retry]) {
      const failure = await attempt().catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(ApplicationFailure);
      expect(failure).toMatchObject({ type: 'SshDetachedRunLost', nonRetryable: true });
      const message = (failure as Error).message;
      expect(message).toContain(`"${key}"`);
      expect(message).toContain(`ctl1 (127.0.15.1:${node.sshd.port})`);
      expect(message).toContain(runDir(key));
      expect(message).toContain('NOT restarted');
    }
    expect(lines(counter)).toEqual(['started']);
  });

  it('says so when the node rebooted since the run started, even if its pid was reused', async () => {
    const key = 'before-reboot';
    mkdirSync(runDir(key), { recursive: true });
    writeFileSync(join(runDir(key), 'boot_id'), 'a-boot-before-this-one\n');
    // A live process that is not the run: what pid reuse after a reboot looks like.
    writeFileSync(join(runDir(key), 'pid'), `${process.pid}\n`);
    const failure = await worker()
      .runDetached(node.target(), { key, command: 'true', stateDir })
      .catch((e: unknown) => e);
    expect(failure).toMatchObject({ type: 'SshDetachedRunLost', nonRetryable: true });
    expect((failure as Error).message).toContain('the node has rebooted since it started');
  });

  it('keeps quotes, $ and newlines in the command, and files each key under a safe name', async () => {
    const key = "wf 7/step:db sync's";
    const command = `printf '%s|%s\\n' "it's" '$HOME'\necho "two words"`;
    const r = await worker().runDetached(node.target(), { key, command, stateDir, pollMs: 100 });
    expect(r).toMatchObject({ exitCode: 0, stdout: "it's|$HOME\ntwo words\n", command });
    expect(readdirSync(join(node.home, '.nova-upgrade', 'runs'))).toContain(safeRunKey(key));
    expect(safeRunKey(key)).toMatch(/^[A-Za-z0-9._-]+$/);
    expect(safeRunKey('a/b')).not.toBe(safeRunKey('a_b'));
    expect(readFileSync(join(runDir(key), 'command'), 'utf8')).toBe(`${command}\n`);
  });
});
