// The stestr parser on output stestr itself prints: each test builds a tiny unittest suite in a
// temp dir and runs Debian's /usr/bin/stestr on it (with /usr/bin/python3, not the pyenv shim).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationFailure } from '@temporalio/common';
import { parseStestrTotals, passedTestIds } from '../activities/tempest/stestr';
import { createTempestActivities } from '../activities/tempest/run';
import { startFakeNovaNode, type FakeNovaNode } from './helpers/novaNode';
import { activityEnv } from './helpers/activityEnv';

const SUITE = `import unittest


class TestServers(unittest.TestCase):
    def test_create_server(self):
        pass

    def test_list_servers(self):
        pass

    def test_resize_server(self):
        self.assertEqual('ACTIVE', 'ERROR', 'server went to ERROR')

    @unittest.skip('no second compute')
    def test_live_migrate(self):
        pass


class TestSkipped(unittest.TestCase):
    @unittest.skip('feature disabled')
    def test_only_skip(self):
        pass
`;

let suite = '';
const env = { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}` };

function stestr(...args: string[]): { output: string; status: number | null } {
  const r = spawnSync('/usr/bin/stestr', args, { cwd: suite, env, encoding: 'utf8' });
  return { output: `${r.stdout}${r.stderr}`, status: r.status };
}

beforeAll(() => {
  suite = mkdtempSync(join(tmpdir(), 'stestr-suite-'));
  mkdirSync(join(suite, 'smoke'));
  writeFileSync(join(suite, 'smoke', '__init__.py'), '');
  writeFileSync(join(suite, 'smoke', 'test_servers.py'), SUITE);
  writeFileSync(join(suite, '.stestr.conf'), '[DEFAULT]\ntest_path=./smoke\ntop_dir=./\n');
  expect(stestr('init').status).toBe(0);
});
afterAll(() => rmSync(suite, { recursive: true, force: true }));

describe('parseStestrTotals on real stestr output', () => {
  it('reads a passing run', () => {
    const { output, status } = stestr('run', 'test_create_server|test_list_servers|test_live_migrate');
    expect(status).toBe(0);
    const r = parseStestrTotals(output);
    expect(r.passed).toBe(true);
    expect(r.totals).toMatchObject({ ran: 3, passed: 2, skipped: 1, expectedFail: 0, unexpectedSuccess: 0, failed: 0 });
    expect(r.totals!.sumOfExecuteSeconds).toBeGreaterThanOrEqual(0);
    expect(r.failingTests).toEqual([]);
    expect(passedTestIds(output).sort()).toEqual([
      'smoke.test_servers.TestServers.test_create_server',
      'smoke.test_servers.TestServers.test_list_servers',
    ]);
  });

  it('reads a failing run and names the failing test', () => {
    const { output, status } = stestr('run');
    expect(status).not.toBe(0);
    const r = parseStestrTotals(output);
    expect(r.passed).toBe(false);
    expect(r.totals).toMatchObject({ ran: 5, passed: 2, skipped: 2, failed: 1 });
    expect(r.failingTests).toEqual(['smoke.test_servers.TestServers.test_resize_server']);
    expect(r.reason).toBe('1 of 5 tests failed');
  });

  it('fails a run whose filter matched nothing, whatever the exit code', () => {
    const { output } = stestr('run', 'no_such_test_anywhere');
    const r = parseStestrTotals(output);
    expect(r.totals).toBeUndefined();
    expect(r.passed).toBe(false);
    expect(r.reason).toMatch(/no Totals block/);
  });

  it('fails a run in which nothing passed', () => {
    const { output, status } = stestr('run', 'TestSkipped');
    expect(status).toBe(0);
    const r = parseStestrTotals(output);
    expect(r.totals).toMatchObject({ ran: 1, passed: 0, skipped: 1 });
    expect(r.passed).toBe(false);
    expect(r.reason).toBe('no test passed (1 ran, 1 skipped)');
  });
});

describe('runTempest over SSH', () => {
  let node: FakeNovaNode;
  beforeAll(async () => {
    node = await startFakeNovaNode('tempest');
  });
  afterAll(() => node?.stop());

  it('returns the totals of a passing run and heartbeats progress', async () => {
    const { runTempest } = createTempestActivities({ runner: node.runner });
    const env = activityEnv();
    const command = `cd ${suite} && /usr/bin/stestr run 'test_create_server|test_list_servers'`;
    const r = await env.run(runTempest, {
      target: node.target,
      command,
      key: 'tempest-pass',
      stateDir: node.stateDir,
      pollMs: 100,
      timeoutMs: 60_000,
    });
    expect(r.totals).toMatchObject({ ran: 2, passed: 2, failed: 0 });
    expect(r.summary).toMatch(/^tempest passed on tempest: 2 passed, 0 skipped in [\d.]+ s$/);
    expect(env.beats.length).toBeGreaterThan(0);
  });

  it('fails non-retryably with the failing test names', async () => {
    const { runTempest } = createTempestActivities({ runner: node.runner });
    const err = await activityEnv()
      .run(runTempest, {
        target: node.target,
        command: `cd ${suite} && /usr/bin/stestr run`,
        key: 'tempest-fail',
        stateDir: node.stateDir,
        pollMs: 100,
        timeoutMs: 60_000,
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    const f = err as ApplicationFailure;
    expect(f.type).toBe('TempestFailed');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('smoke.test_servers.TestServers.test_resize_server');
    expect((f.details?.[0] as { failingTests: string[] }).failingTests).toEqual([
      'smoke.test_servers.TestServers.test_resize_server',
    ]);
  });

  it('fails a run that matched no tests even when the command exits 0', async () => {
    const { runTempest } = createTempestActivities({ runner: node.runner });
    const err = await activityEnv()
      .run(runTempest, {
        target: node.target,
        command: `cd ${suite} && (/usr/bin/stestr run no_such_test; true)`,
        key: 'tempest-none',
        stateDir: node.stateDir,
        pollMs: 100,
        timeoutMs: 60_000,
      })
      .catch((e: unknown) => e);
    expect((err as ApplicationFailure).type).toBe('TempestFailed');
    expect((err as ApplicationFailure).message).toMatch(/no Totals block/);
  });
});
