// Detached runs end by event (issue 16): the exchange that claims or reattaches to a run waits
// on the node for its end, so a run is reported when it ends, not at the next poll; and a
// worker that dies while waiting leaves the run to the retry, which completes it once.
// Real sshd on 127.0.38.0/24; the dying worker is a real process killed with SIGKILL.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshPool } from '../activities/ssh/pool';
import { safeRunKey } from '../activities/ssh/detached';
import { SshLab, type LabNode } from './helpers/sshLab';
import { processRunning, waitFor } from './helpers/processes';

const lab = new SshLab();
let node: LabNode;
const stateDir = '$HOME/.nova-upgrade';
const pool = new SshPool({ killGraceMs: 1000 });
const runDir = (key: string) => join(node.home, '.nova-upgrade', 'runs', safeRunKey(key));
const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

beforeAll(async () => {
  node = await lab.node('evt1', '127.0.38.40');
});

afterAll(async () => {
  await pool.close();
  lab.cleanup();
});

describe('runDetached by event', () => {
  it('reports a run when it ends, well inside one poll interval', async () => {
    const started = Date.now();
    const r = await pool.runDetached(node.target(), {
      key: 'evt/short',
      command: 'sleep 0.3; echo ok',
      stateDir,
      pollMs: 20_000,
    });
    expect(r).toMatchObject({ exitCode: 0, stdout: 'ok\n' });
    // With a 20 s poll, only the event can end this before 20 s (a generous bound, not a goal).
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("waits on the run's lock: the end is seen at once, even when the command leaves a daemon behind", async () => {
    // The background sleep keeps every descriptor the command had. Had it the run's lock, the
    // wait would last the whole 20 s bound.
    const key = 'evt/daemon';
    const started = Date.now();
    const r = await pool.runDetached(node.target(), {
      key,
      command: 'sleep 30 > /dev/null 2>&1 & sleep 1.2; echo ok',
      stateDir,
      pollMs: 20_000,
    });
    expect(r).toMatchObject({ exitCode: 0, stdout: 'ok\n' });
    expect(Date.now() - started).toBeLessThan(10_000);
    // The lock path was the one taken: the run recorded that it holds its lock.
    expect(existsSync(join(runDir(key), 'locked'))).toBe(true);
  });

  it('a run claimed before the lock existed (no "locked" marker) is still awaited to its end', async () => {
    // As a worker of the release before claimed it: pid, then exit, and no lock.
    const key = 'evt/old-claim';
    const dir = runDir(key);
    mkdirSync(dir, { recursive: true });
    const old = spawn(
      'sh',
      [
        '-c',
        'echo $$ > pid; sleep 1.5; echo done > output; date +%s > finished_at; echo 0 > exit.tmp && mv exit.tmp exit',
      ],
      { cwd: dir, detached: true, stdio: 'ignore' },
    );
    old.unref();
    expect(await waitFor(() => existsSync(join(dir, 'pid')), 5_000)).toBe(true);
    const started = Date.now();
    const r = await pool.runDetached(node.target(), { key, command: 'true', stateDir, pollMs: 20_000 });
    expect(r).toMatchObject({ exitCode: 0, stdout: 'done\n', reattached: true });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(existsSync(join(dir, 'locked'))).toBe(false);
  });

  it('a worker that dies mid-wait: the retry reattaches and the run completes once, with no second copy', async () => {
    const key = 'evt/worker-dies';
    const counter = join(node.home, 'evt-counter');
    const command = `echo started >> "$HOME/evt-counter"; sleep 2; echo "migrated"; exit 0`;
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures', 'detachedWorker.ts')], {
      env: { ...process.env, NU_TARGET: JSON.stringify(node.target()), NU_KEY: key, NU_COMMAND: command },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    // The worker claimed the run and is waiting on its SSH channel.
    expect(await waitFor(() => lines(counter).length === 1, 15_000)).toBe(true);
    const pid = Number(readFileSync(join(runDir(key), 'pid'), 'utf8').trim());
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(out).not.toContain('finished');
    expect(processRunning(pid)).toBe(true);

    // The activity's retry on another worker, same key.
    const r = await pool.runDetached(node.target(), { key, command, stateDir, pollMs: 20_000 });
    expect(r).toMatchObject({ exitCode: 0, stdout: 'migrated\n', reattached: true });
    expect(lines(counter)).toEqual(['started']);
    // And once more after it finished: the record, not a new copy.
    expect(await pool.runDetached(node.target(), { key, command, stateDir })).toMatchObject({ reattached: true });
    expect(lines(counter)).toEqual(['started']);
  });
});
