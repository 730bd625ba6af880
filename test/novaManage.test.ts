// installCode, the db syncs, nova-status and online data migrations over a real sshd, against
// the nova-manage/nova-status doubles in test/fixtures/nova/fakebin.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_COMMANDS, renderCommand, type CommandName } from '../inventory/commands';
import { createManageActivities } from '../activities/nova/manage';
import { startFakeNovaNode, type FakeNovaNode } from './helpers/novaNode';
import { activityEnv, failureOf } from './helpers/activityEnv';

let node: FakeNovaNode;
let acts: ReturnType<typeof createManageActivities>;
beforeAll(async () => {
  node = await startFakeNovaNode('controller');
  acts = createManageActivities({ runner: node.runner });
});
afterAll(() => node?.stop());

/** A devstack default template, with the fake node's directory as devstack's venv (its bin/ holds the doubles). */
const T = (name: CommandName, values: Record<string, string | number> = {}) =>
  renderCommand(name, DEFAULT_COMMANDS[name], { venv: node.dir, ...values });

describe('installCode', () => {
  it('installs and verifies once; the second run finds the version installed', async () => {
    node.write('version', '30.0.0\n');
    const input = {
      target: node.target,
      versionCommand: T('codeVersion'),
      command: `echo x >> "$FAKE_STATE/installs" && echo 31.0.0 > "$FAKE_STATE/version"`,
      version: '31.0.0',
      key: 'wf1-install-controller',
      stateDir: node.stateDir,
      pollMs: 100,
    };
    const first = await activityEnv().run(acts.installCode, input);
    expect(first).toMatchObject({
      alreadyDone: false,
      installedVersion: '31.0.0',
      summary: 'installed nova 31.0.0 on controller (was 30.0.0)',
    });
    const second = await activityEnv().run(acts.installCode, { ...input, key: 'wf1-install-controller-again' });
    expect(second).toMatchObject({ alreadyDone: true, summary: 'nova 31.0.0 is already installed on controller' });
    expect(node.count('installs')).toBe(1);
    const read = await activityEnv().run(acts.readCodeVersion, {
      target: node.target,
      command: T('codeVersion'),
    });
    expect(read).toMatchObject({ version: '31.0.0', summary: 'nova 31.0.0 is installed on controller' });
  });

  it('fails when the install leaves another version', async () => {
    node.write('version', '30.0.0\n');
    const err = await failureOf(
      activityEnv().run(acts.installCode, {
        target: node.target,
        versionCommand: T('codeVersion'),
        command: 'true',
        version: '31.0.0',
        key: 'noop-install',
        stateDir: node.stateDir,
        pollMs: 100,
      }),
    );
    expect(err.type).toBe('NovaCodeVersionMismatch');
    expect(err.message).toContain(
      `after installing nova 31.0.0 on controller, \`${T('codeVersion')}\` reports "30.0.0"`,
    );
  });

  it('fails non-retryably with the output when the install command fails', async () => {
    node.write('version', '30.0.0\n');
    const err = await failureOf(
      activityEnv().run(acts.installCode, {
        target: node.target,
        versionCommand: T('codeVersion'),
        command: 'echo "error: pathspec 31.0.0 did not match" >&2; exit 1',
        version: '31.0.0',
        key: 'bad-install',
        stateDir: node.stateDir,
        pollMs: 100,
      }),
    );
    expect(err.type).toBe('NovaCommandFailed');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain('installing nova 31.0.0 failed on controller');
    expect(err.message).toContain('pathspec 31.0.0 did not match');
  });
});

describe('schema syncs', () => {
  it('run detached, say they are idempotent, and reattach under the same key', async () => {
    const api = {
      target: node.target,
      command: T('apiDbSync'),
      key: 'wf1-api-db',
      stateDir: node.stateDir,
      pollMs: 100,
    };
    const r1 = await activityEnv().run(acts.syncApiDb, api);
    expect(r1.summary).toBe('synced the nova API database from controller (api_db sync is idempotent)');
    // A retry of the same step (same key) reattaches to the finished run instead of running again.
    const r2 = await activityEnv().run(acts.syncApiDb, api);
    expect(r2.commands[0]!.reattached).toBe(true);
    expect(node.count('api_db_sync.log')).toBe(1);

    const cell = {
      target: node.target,
      command: T('dbSync', { config: '/etc/nova/nova_cell1.conf', cell: 'cell1' }),
      cell: 'cell1',
      key: 'wf1-db-cell1',
      stateDir: node.stateDir,
      pollMs: 100,
    };
    expect((await activityEnv().run(acts.syncCellDb, cell)).summary).toBe(
      'synced the cell1 database from controller (db sync is idempotent)',
    );
    expect(node.read('config-files.log')).toBe('/etc/nova/nova_cell1.conf\n');

    const placement = await activityEnv().run(acts.upgradePlacement, {
      target: node.target,
      command: 'echo placement >> "$FAKE_STATE/placement.log"',
      key: 'wf1-placement',
      stateDir: node.stateDir,
      pollMs: 100,
    });
    expect(placement.summary).toContain('placement-manage db sync is idempotent');
  });
});

describe('runUpgradeCheck', () => {
  const run = () => activityEnv().run(acts.runUpgradeCheck, { target: node.target, command: T('upgradeCheck') });

  it('passes on exit 0', async () => {
    node.write('status_mode', 'success');
    const r = await run();
    expect(r.outcome).toBe('success');
    expect(r.checks).toHaveLength(7);
    expect(r.summary).toBe('nova-status upgrade check passed on controller (7 checks)');
  });

  it('returns warnings on exit 1 for the next gate, without failing', async () => {
    node.write('status_mode', 'warning');
    const r = await run();
    expect(r.outcome).toBe('warning');
    expect(r.warnings.map((w) => w.name)).toEqual(['Older than N-1 computes']);
    expect(r.summary).toContain(
      'warns on controller: Older than N-1 computes: Current Nova version does not support computes older than Caracal',
    );
  });

  it('fails non-retryably on exit 2 with the failing checks', async () => {
    node.write('status_mode', 'failure');
    const err = await failureOf(run());
    expect(err.type).toBe('NovaUpgradeCheckFailed');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toMatch(/^nova-status upgrade check failed on controller: Cells v2: No host mappings found/);
  });

  it('fails non-retryably on exit 255 with the traceback', async () => {
    node.write('status_mode', 'error');
    const err = await failureOf(run());
    expect(err.type).toBe('NovaUpgradeCheckError');
    expect(err.message).toContain('RuntimeError: Unable to connect to the database');
  });
});

describe('runOnlineDataMigrations', () => {
  const command = () =>
    T('onlineDataMigrations', {
      maxCount: 50,
      apiConfig: '/etc/nova/nova.conf',
      config: '/etc/nova/nova_cell1.conf',
      cell: 'cell1',
    });

  it('repeats rounds until nova says done, then finds nothing left on a second run', async () => {
    node.write('odm_remaining', '120');
    node.write('odm_mode', 'ok');
    const env = activityEnv();
    const r = await env.run(acts.runOnlineDataMigrations, {
      target: node.target,
      command: command(),
      keyPrefix: 'wf1-odm',
      stateDir: node.stateDir,
      pollMs: 100,
      maxRounds: 10,
    });
    // 50 + 50 + 20 migrated with exit 1 each, then a round that finds nothing and exits 0.
    expect(r.rounds).toBe(4);
    expect(r.alreadyDone).toBe(false);
    expect(r.table.find((row) => row.migration === 'populate_instance_compute_id')).toEqual({
      migration: 'populate_instance_compute_id',
      totalNeeded: 0,
      completed: 0,
    });
    expect(env.beats).toContainEqual({ round: 4 });
    expect(node.count('odm.log')).toBe(4);

    const again = await activityEnv().run(acts.runOnlineDataMigrations, {
      target: node.target,
      command: command(),
      keyPrefix: 'wf1-odm-again',
      stateDir: node.stateDir,
      pollMs: 100,
      maxRounds: 10,
    });
    expect(again).toMatchObject({
      rounds: 1,
      alreadyDone: true,
      summary: 'online data migrations had nothing left to migrate (controller)',
    });
    expect(node.count('odm.log')).toBe(5);
  });

  it('resumes at the heartbeated round after a worker died, reattaching instead of rerunning', async () => {
    node.write('odm_remaining', '60');
    const input = {
      target: node.target,
      command: command(),
      keyPrefix: 'wf2-odm',
      stateDir: node.stateDir,
      pollMs: 100,
      maxRounds: 10,
    };
    const before = node.count('odm.log');
    // Attempt 1 got through round 1 and was in round 2 when its worker died: round 2 ran.
    await node.runner.runDetached(node.target, {
      key: 'wf2-odm-round-1',
      command: command(),
      stateDir: node.stateDir,
      pollMs: 100,
    });
    await node.runner.runDetached(node.target, {
      key: 'wf2-odm-round-2',
      command: command(),
      stateDir: node.stateDir,
      pollMs: 100,
    });
    const r = await activityEnv({ attempt: 2, heartbeatDetails: { round: 2 } }).run(
      acts.runOnlineDataMigrations,
      input,
    );
    // Round 2 (50 then 10 of 60 migrated, exit 1) is reattached, round 3 finds nothing left.
    expect(r.rounds).toBe(3);
    expect(r.commands[0]!.reattached).toBe(true);
    expect(r.commands).toHaveLength(2);
    expect(node.count('odm.log') - before).toBe(3);
  });

  it('fails non-retryably on exit 2 showing the table', async () => {
    node.write('odm_remaining', '0');
    node.write('odm_mode', 'fail');
    const err = await failureOf(
      activityEnv().run(acts.runOnlineDataMigrations, {
        target: node.target,
        command: command(),
        keyPrefix: 'wf3-odm',
        stateDir: node.stateDir,
        pollMs: 100,
        maxRounds: 3,
      }),
    );
    node.write('odm_mode', 'ok');
    expect(err.type).toBe('NovaOnlineDataMigrationsFailed');
    expect(err.message).toContain('online data migrations failed in round 1 on controller (populate_dev_uuids)');
    expect(err.message).toContain('| populate_instance_compute_id |');
  });

  it('fails non-retryably on exit 127 (bad input)', async () => {
    const bad = T('onlineDataMigrations', {
      maxCount: 0,
      apiConfig: '/etc/nova/nova.conf',
      config: '/etc/nova/nova_cell1.conf',
      cell: 'cell1',
    });
    const err = await failureOf(
      activityEnv().run(acts.runOnlineDataMigrations, {
        target: node.target,
        command: bad,
        keyPrefix: 'wf4-odm',
        stateDir: node.stateDir,
        pollMs: 100,
        maxRounds: 3,
      }),
    );
    expect(err.type).toBe('NovaOnlineDataMigrationsBadInput');
    expect(err.message).toContain('Must supply a positive value for max_count.');
  });

  it('stops after maxRounds when work remains', async () => {
    node.write('odm_remaining', '500');
    const err = await failureOf(
      activityEnv().run(acts.runOnlineDataMigrations, {
        target: node.target,
        command: command(),
        keyPrefix: 'wf5-odm',
        stateDir: node.stateDir,
        pollMs: 100,
        maxRounds: 2,
      }),
    );
    expect(err.type).toBe('NovaOnlineDataMigrationsIncomplete');
    expect(node.read('odm_remaining')).toBe('400');
  });
});

describe('runOnlineDataMigrations in every cell', () => {
  /** A cell's round that ends once `other` has started: one after another, the first cell would never end. */
  const meetsOther = (self: string, other: string) =>
    `touch "$FAKE_STATE/${self}-started"; for i in $(seq 200); do [ -e "$FAKE_STATE/${other}-started" ] && exit 0; sleep 0.05; done; echo "${other} never started" >&2; exit 3`;
  const input = (keyPrefix: string, cells: { name: string; command: string }[]) => ({
    target: node.target,
    cells,
    keyPrefix,
    stateDir: node.stateDir,
    pollMs: 50,
    maxRounds: 3,
  });

  it('runs the cells at once, each to exit 0', async () => {
    const r = await activityEnv().run(
      acts.runOnlineDataMigrations,
      input('cells1', [
        { name: 'cell0', command: meetsOther('cells1-cell0', 'cells1-cell1') },
        { name: 'cell1', command: meetsOther('cells1-cell1', 'cells1-cell0') },
      ]),
    );
    expect(r.roundsByCell).toEqual({ cell0: 1, cell1: 1 });
    expect(r.summary).toBe('online data migrations had nothing left to migrate in cell0, cell1 (controller)');
  });

  it("a cell that fails is reported once every other cell's round has ended, so a retry starts no second copy", async () => {
    const err = await failureOf(
      activityEnv().run(
        acts.runOnlineDataMigrations,
        input('cells2', [
          { name: 'cell0', command: 'echo "Error attempting to run populate_dev_uuids" >&2; exit 2' },
          { name: 'cell1', command: `sleep 1; touch "$FAKE_STATE/cells2-cell1-ended"; exit 0` },
        ]),
      ),
    );
    expect(err.type).toBe('NovaOnlineDataMigrationsFailed');
    expect(err.message).toContain('online data migrations failed in round 1 in cell0 on controller');
    expect(existsSync(join(node.state, 'cells2-cell1-ended'))).toBe(true);
  });

  it.each([
    ['of cells at once', { round: 1, done: {}, running: { cell0: 2, cell1: 1 } }],
    ['a worker before cells ran at once left', { round: 2, cell: 'cell0', done: {} }],
  ])('resumes where the heartbeat %s says, reattaching to the round in flight', async (_, heartbeatDetails) => {
    const prefix = `cells3-${'running' in heartbeatDetails ? 'new' : 'old'}`;
    const ends = (cell: string) => `echo x >> "$FAKE_STATE/${prefix}-${cell}-rounds"; exit 0`;
    // Attempt 1's worker died while cell0's round 2 ran: it ran to its end on the node.
    await node.runner.runDetached(node.target, {
      key: `${prefix}/cell0-round-2`,
      command: ends('cell0'),
      stateDir: node.stateDir,
      pollMs: 50,
    });
    const r = await activityEnv({ attempt: 2, heartbeatDetails }).run(
      acts.runOnlineDataMigrations,
      input(prefix, [
        { name: 'cell0', command: ends('cell0') },
        { name: 'cell1', command: ends('cell1') },
      ]),
    );
    expect(r.roundsByCell).toEqual({ cell0: 2, cell1: 1 });
    expect(r.commands.find((c) => c.command === ends('cell0'))?.reattached).toBe(true);
    // cell0's round ran once, on attempt 1; cell1's once, on attempt 2.
    expect(node.count(`${prefix}-cell0-rounds`)).toBe(1);
    expect(node.count(`${prefix}-cell1-rounds`)).toBe(1);
  });
});

describe('readCodeVersion', () => {
  it('takes the release line, not a warning printed after it', async () => {
    const r = await activityEnv().run(acts.readCodeVersion, {
      target: node.target,
      command: `echo 31.0.0; echo "DeprecationWarning: pkg_resources is deprecated" >&2`,
    });
    expect(r.version).toBe('31.0.0');
    const old = await activityEnv().run(acts.readCodeVersion, { target: node.target, command: `echo 20.6.1 >&2` });
    expect(old.version).toBe('20.6.1');
  });
});
