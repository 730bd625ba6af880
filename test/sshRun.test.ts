// SshPool.run against a real sshd: results, quoting, stdin, and that timeout and cancellation
// stop the remote command instead of only closing our side of the channel.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationFailure } from '@temporalio/common';
import { SshPool } from '../activities/ssh/pool';
import { SshLab, type LabNode } from './helpers/sshLab';
import { processRunning, waitFor } from './helpers/processes';

const lab = new SshLab();
let node: LabNode;
let pool: SshPool;

beforeAll(async () => {
  node = await lab.node('runnode', '127.0.12.1');
  pool = new SshPool({ killGraceMs: 1000 });
});

afterAll(async () => {
  await pool?.close();
  lab.cleanup();
});

describe('SshPool.run', () => {
  it('returns exit code, stdout and stderr of a successful and a failing command', async () => {
    const ok = await pool.run(node.target(), 'echo hello; echo warning >&2');
    expect(ok).toMatchObject({
      node: 'runnode',
      command: 'echo hello; echo warning >&2',
      exitCode: 0,
      stdout: 'hello\n',
      stderr: 'warning\n',
    });
    expect(ok.durationMs).toBeGreaterThanOrEqual(0);

    const bad = await pool.run(node.target(), 'echo partial; exit 7');
    expect(bad.exitCode).toBe(7);
    expect(bad.stdout).toBe('partial\n');
  });

  it('passes quotes, $, backslashes and newlines through intact', async () => {
    const text = `it's "quoted" $HOME \`date\` \\n back\\slash\nsecond line; exit 9`;
    const r = await pool.run(node.target(), `printf '%s' '${text.replace(/'/g, `'\\''`)}'`);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(text);

    // The same text expanded by the remote shell: $HOME is the node's, the quotes survive.
    const expanded = await pool.run(node.target(), 'printf "%s|%s" "$HOME" \'a "b" $c\'\necho; echo "line 2"');
    expect(expanded.stdout).toBe(`${node.home}|a "b" $c\nline 2\n`);
  });

  it('feeds stdin to the command', async () => {
    const r = await pool.run(node.target(), 'wc -l; cat >/dev/null', { stdin: 'one\ntwo\nthree\n' });
    expect(r.stdout.trim()).toBe('3');
    const echo = await pool.run(node.target(), 'cat', { stdin: "it's $x\n" });
    expect(echo.stdout).toBe("it's $x\n");
  });

  it('keeps only the tail of a large output', async () => {
    const r = await pool.run(
      node.target(),
      'i=0; while [ $i -lt 3000 ]; do echo "line $i ................................"; i=$((i + 1)); done',
    );
    expect(r.exitCode).toBe(0);
    expect(Buffer.byteLength(r.stdout)).toBeLessThanOrEqual(64 * 1024);
    expect(r.stdout.endsWith('line 2999 ................................\n')).toBe(true);
    expect(r.stdout).not.toContain('line 0 ');
  });

  it('reports a command killed by a signal', async () => {
    const r = await pool.run(node.target(), 'kill -TERM $$');
    expect(r.exitCode === null ? r.signal : r.exitCode).toBeTruthy();
  });
});

// Writes the shell's and the sleep's pids, so the test can look for them after the stop.
function stoppableCommand(tag: string): { command: string; shPid: string; sleepPid: string; marker: string } {
  const shPid = join(node.home, `${tag}.sh.pid`);
  const sleepPid = join(node.home, `${tag}.sleep.pid`);
  const marker = join(node.home, `${tag}.marker`);
  return {
    command: `echo $$ > ${shPid}; sleep 30 & echo $! > ${sleepPid}; wait; touch ${marker}`,
    shPid,
    sleepPid,
    marker,
  };
}

async function expectStopped(c: ReturnType<typeof stoppableCommand>): Promise<void> {
  const pids = [c.shPid, c.sleepPid].map((f) => Number(readFileSync(f, 'utf8').trim()));
  for (const pid of pids) expect(pid).toBeGreaterThan(1);
  expect(await waitFor(() => pids.every((pid) => !processRunning(pid)), 3000)).toBe(true);
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(existsSync(c.marker)).toBe(false);
}

describe('stopping a remote command', () => {
  it('kills the remote process group on timeout and fails retryably, naming node and command', async () => {
    const c = stoppableCommand('timeout');
    const started = Date.now();
    const err = await pool.run(node.target(), c.command, { timeoutMs: 700 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    const failure = err as ApplicationFailure;
    expect(failure.type).toBe('SshCommandTimedOut');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toContain('runnode (127.0.12.1:');
    expect(failure.message).toContain('sleep 30');
    expect(Date.now() - started).toBeLessThan(5000);
    await expectStopped(c);
  });

  it('kills the remote process group when the AbortSignal fires, and rejects with its reason', async () => {
    const c = stoppableCommand('abort');
    const controller = new AbortController();
    const running = pool.run(node.target(), c.command, { signal: controller.signal });
    await waitFor(() => existsSync(c.sleepPid), 5000);
    const reason = new Error('operator cancelled the step');
    controller.abort(reason);
    await expect(running).rejects.toBe(reason);
    await expectStopped(c);
  });

  it('uses KILL when the command ignores TERM', async () => {
    const c = stoppableCommand('ignores-term');
    c.command = `trap '' TERM; ${c.command}`;
    const started = Date.now();
    await expect(pool.run(node.target(), c.command, { timeoutMs: 500 })).rejects.toThrow(
      'did not finish within 500 ms',
    );
    // 500 ms timeout plus the 1000 ms grace the pool was given before KILL.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    await expectStopped(c);
  });

  it('still kills by process group when the login shell prints a banner first', async () => {
    const noisy = await lab.node('noisy', '127.0.12.2');
    writeFileSync(join(noisy.home, '.bashrc'), 'echo "welcome to noisy"\n');
    const r = await pool.run(noisy.target(), 'echo hi');
    expect(r.stdout).toBe('welcome to noisy\nhi\n');
    const pidFile = join(noisy.home, 'sleep.pid');
    await expect(pool.run(noisy.target(), `sleep 30 & echo $! > ${pidFile}; wait`, { timeoutMs: 500 })).rejects.toThrow(
      'was killed',
    );
    expect(await waitFor(() => !processRunning(Number(readFileSync(pidFile, 'utf8'))), 3000)).toBe(true);
    const detached = await pool.runDetached(noisy.target(), {
      key: 'noisy',
      command: 'echo detached',
      stateDir: '$HOME/state',
      pollMs: 100,
    });
    expect(detached).toMatchObject({ exitCode: 0, stdout: 'detached\n' });
    expect(detached.reattached).toBeUndefined();
  });

  it('refuses to start when already cancelled', async () => {
    const controller = new AbortController();
    controller.abort(new Error('too late'));
    await expect(pool.run(node.target(), 'touch should-not-exist', { signal: controller.signal })).rejects.toThrow(
      'too late',
    );
    expect(existsSync(join(node.home, 'should-not-exist'))).toBe(false);
  });
});
