// Service activities over a real sshd against the systemctl double: each run twice, and the
// second must report alreadyDone without touching the unit.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_COMMANDS, renderCommand } from '../inventory/commands';
import { createServiceActivities } from '../activities/nova/services';
import { createServiceRecordActivities } from '../activities/nova/serviceRecords';
import { SERVICE_ROWS_MARKER } from '../common/serviceRowsScript';
import { startFakeNovaNode, type FakeNovaNode } from './helpers/novaNode';
import { activityEnv, failureOf } from './helpers/activityEnv';

let node: FakeNovaNode;
let acts: ReturnType<typeof createServiceActivities>;
beforeAll(async () => {
  node = await startFakeNovaNode('apicomp');
  acts = createServiceActivities({ runner: node.runner });
});
afterAll(() => node?.stop());

const cmd = (name: 'serviceState' | 'serviceStart' | 'serviceStop' | 'serviceRestart' | 'serviceHup', unit: string) =>
  renderCommand(name, DEFAULT_COMMANDS[name], { unit, node: 'apicomp' });

function unitInput(unit: string) {
  return {
    target: node.target,
    unit,
    stateCommand: cmd('serviceState', unit),
    statusCommand: `systemctl status --no-pager ${unit}`,
    timeoutMs: 3000,
    pollMs: 100,
  };
}

describe('readServiceState', () => {
  it('reads pid, state and start time', async () => {
    const s = await activityEnv().run(acts.readServiceState, {
      target: node.target,
      command: cmd('serviceState', 'devstack@n-sch'),
    });
    expect(s).toMatchObject({ mainPid: 1000, activeState: 'active', subState: 'running', startedMonotonic: 5000000 });
  });
});

describe('restartService', () => {
  it('restarts once; a second run sees the new process and does nothing', async () => {
    const unit = 'devstack@n-cond-cell1';
    const before = await activityEnv().run(acts.readServiceState, {
      target: node.target,
      command: cmd('serviceState', unit),
    });
    const input = {
      ...unitInput(unit),
      restartCommand: cmd('serviceRestart', unit),
      before: { mainPid: before.mainPid, startedMonotonic: before.startedMonotonic },
      key: 'wf1-restart-cond',
      stateDir: node.stateDir,
      pollMs: 100,
    };
    const first = await activityEnv().run(acts.restartService, input);
    expect(first).toMatchObject({ alreadyDone: false, summary: `restarted ${unit} on apicomp (main pid 1000 → 1001)` });
    expect(first.state.activeState).toBe('active');
    // As after a worker died once the restart had happened: a fresh key, the same `before`.
    const second = await activityEnv().run(acts.restartService, { ...input, key: 'wf1-restart-cond-retry' });
    expect(second).toMatchObject({
      alreadyDone: true,
      summary: `${unit} on apicomp already restarted (main pid 1000 → 1001)`,
    });
    expect(node.count(`units/${unit}/restarts`)).toBe(1);
  });

  it('fails non-retryably with the unit status when the unit does not come back', async () => {
    const unit = 'devstack@n-api-meta';
    const before = await activityEnv().run(acts.readServiceState, {
      target: node.target,
      command: cmd('serviceState', unit),
    });
    node.write(`units/${unit}/broken`, '');
    const err = await failureOf(
      activityEnv().run(acts.restartService, {
        ...unitInput(unit),
        restartCommand: cmd('serviceRestart', unit),
        before,
        key: 'wf1-restart-meta',
        stateDir: node.stateDir,
        pollMs: 100,
      }),
    );
    expect(err.type).toBe('NovaServiceFailedToStart');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain(`${unit} on apicomp did not become active after the restart`);
    expect(err.message).toContain('ActiveState=failed');
    expect(err.message).toContain('ValueError: bad option');
  });
});

describe('stopService and startService', () => {
  it('stop and start once each; second runs are no-ops', async () => {
    const unit = 'devstack@n-cpu';
    // Detached, as the workflow runs a graceful nova-compute stop.
    const stop = {
      ...unitInput(unit),
      stopCommand: cmd('serviceStop', unit),
      key: 'wf1-cpu/stop',
      stateDir: node.stateDir,
      pollMs: 100,
    };
    expect(await activityEnv().run(acts.stopService, stop)).toMatchObject({
      alreadyDone: false,
      summary: `stopped ${unit} on apicomp`,
    });
    expect(await activityEnv().run(acts.stopService, stop)).toMatchObject({
      alreadyDone: true,
      summary: `${unit} on apicomp is already stopped`,
    });
    expect(node.count(`units/${unit}/stops`)).toBe(1);

    const start = { ...unitInput(unit), startCommand: cmd('serviceStart', unit) };
    const started = await activityEnv().run(acts.startService, start);
    expect(started).toMatchObject({ alreadyDone: false, summary: `started ${unit} on apicomp (main pid 1001)` });
    expect(await activityEnv().run(acts.startService, start)).toMatchObject({
      alreadyDone: true,
      summary: `${unit} on apicomp is already running (main pid 1001)`,
    });
    expect(node.count(`units/${unit}/starts`)).toBe(1);
  });

  it('a detached stop and start are one exchange each, and a retry of either acts no second time', async () => {
    const unit = 'devstack@n-cond-cell1';
    const stops = node.count(`units/${unit}/stops`);
    const starts = node.count(`units/${unit}/starts`);
    const stop = {
      ...unitInput(unit),
      stopCommand: cmd('serviceStop', unit),
      key: 'wf2-cond/stop',
      stateDir: node.stateDir,
    };
    const stopped = await activityEnv().run(acts.stopService, stop);
    expect(stopped).toMatchObject({ alreadyDone: false, summary: `stopped ${unit} on apicomp` });
    expect(stopped.state.activeState).toBe('inactive');
    // The read before, the stop and the read after were three exchanges; now one run.
    expect(stopped.commands).toHaveLength(1);
    const start = {
      ...unitInput(unit),
      startCommand: cmd('serviceStart', unit),
      key: 'wf2-cond/start',
      stateDir: node.stateDir,
    };
    const started = await activityEnv().run(acts.startService, start);
    expect(started).toMatchObject({
      alreadyDone: false,
      summary: expect.stringMatching(/^started devstack@n-cond-cell1 on apicomp \(main pid \d+\)$/),
    });
    expect(started.commands).toHaveLength(1);
    // The activity's retry reattaches to its run on the node: done, nothing run again.
    expect(await activityEnv().run(acts.stopService, stop)).toMatchObject({ alreadyDone: true });
    expect(await activityEnv().run(acts.startService, start)).toMatchObject({ alreadyDone: true });
    expect(node.count(`units/${unit}/stops`) - stops).toBe(1);
    expect(node.count(`units/${unit}/starts`) - starts).toBe(1);
    // A new key (an operator's retry) finds the unit running, and leaves it so.
    expect(await activityEnv().run(acts.startService, { ...start, key: 'wf2-cond/start-r1' })).toMatchObject({
      alreadyDone: true,
      summary: `${unit} on apicomp is already running (main pid ${started.state.mainPid})`,
    });
    expect(node.count(`units/${unit}/starts`) - starts).toBe(1);
  });

  it('a detached start whose new process dies at once fails with the unit’s status', async () => {
    const unit = 'devstack@n-novnc-cell1';
    await activityEnv().run(acts.stopService, {
      ...unitInput(unit),
      stopCommand: cmd('serviceStop', unit),
      key: 'wf3-novnc/stop',
      stateDir: node.stateDir,
    });
    node.write(`units/${unit}/broken`, '');
    try {
      const err = await failureOf(
        activityEnv().run(acts.startService, {
          ...unitInput(unit),
          startCommand: cmd('serviceStart', unit),
          key: 'wf3-novnc/start',
          stateDir: node.stateDir,
        }),
      );
      expect(err.type).toBe('NovaServiceFailedToStart');
      expect(err.message).toContain(`${unit} on apicomp did not become active`);
    } finally {
      rmSync(join(node.state, `units/${unit}/broken`), { force: true });
    }
  });

  it('a stop run claimed by a worker before the one-exchange stop is judged by a fresh read', async () => {
    const unit = 'devstack@n-sch';
    const stops = node.count(`units/${unit}/stops`);
    // What the earlier worker left on the node: the stop command alone, under the step's key.
    const old = await node.runner.runDetached(node.target, {
      key: 'wf4-sch/stop',
      command: cmd('serviceStop', unit),
      stateDir: node.stateDir,
      timeoutMs: 10_000,
    });
    expect(old.exitCode).toBe(0);
    const r = await activityEnv().run(acts.stopService, {
      ...unitInput(unit),
      stopCommand: cmd('serviceStop', unit),
      key: 'wf4-sch/stop',
      stateDir: node.stateDir,
    });
    expect(r).toMatchObject({ alreadyDone: true, summary: `${unit} on apicomp is already stopped` });
    expect(r.state.activeState).toBe('inactive');
    expect(node.count(`units/${unit}/stops`) - stops).toBe(1);
    await activityEnv().run(acts.startService, { ...unitInput(unit), startCommand: cmd('serviceStart', unit) });
  });

  it('fails non-retryably when a unit will not start', async () => {
    const unit = 'devstack@n-novnc-cell1';
    await activityEnv().run(acts.stopService, { ...unitInput(unit), stopCommand: cmd('serviceStop', unit) });
    node.write(`units/${unit}/broken`, '');
    const err = await failureOf(
      activityEnv().run(acts.startService, { ...unitInput(unit), startCommand: cmd('serviceStart', unit) }),
    );
    expect(err.type).toBe('NovaServiceFailedToStart');
    expect(err.message).toContain(`${unit} on apicomp did not become active`);
  });
});

describe('hupService', () => {
  it('sends a HUP each time it is asked', async () => {
    const unit = 'devstack@n-sch';
    const r = await activityEnv().run(acts.hupService, { target: node.target, unit, command: cmd('serviceHup', unit) });
    expect(r.summary).toBe(`sent HUP to ${unit} on apicomp`);
    expect(node.count(`units/${unit}/hups`)).toBe(1);
  });
});

describe('hupServices', () => {
  it("sends each of a node's units one HUP in one exchange", async () => {
    const units = ['devstack@n-sch', 'devstack@n-cpu'];
    const before = units.map((u) => node.count(`units/${u}/hups`));
    const r = await activityEnv().run(acts.hupServices, {
      target: node.target,
      hups: units.map((unit) => ({ unit, command: cmd('serviceHup', unit) })),
    });
    expect(r.summary).toBe('sent HUP to devstack@n-sch, devstack@n-cpu on apicomp');
    expect(r.commands).toHaveLength(1);
    expect(units.map((u) => node.count(`units/${u}/hups`) - before[units.indexOf(u)]!)).toEqual([1, 1]);
  });

  it('names the unit whose HUP failed, and the ones before it that had theirs', async () => {
    const before = node.count('units/devstack@n-sch/hups');
    const hups = [
      { unit: 'devstack@n-sch', command: cmd('serviceHup', 'devstack@n-sch') },
      { unit: 'devstack@n-gone', command: 'echo "no unit n-gone" >&2; exit 5' },
      { unit: 'devstack@n-cpu', command: cmd('serviceHup', 'devstack@n-cpu') },
    ];
    const err = await activityEnv()
      .run(acts.hupServices, { target: node.target, hups })
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err?.message).toMatch(
      /^sending HUP to devstack@n-gone on apicomp failed \(exit 1\) after devstack@n-sch had it: .*no unit n-gone/s,
    );
    expect(node.count('units/devstack@n-sch/hups') - before).toBe(1);
  });
});

describe('checkServiceVersions at fleet size', () => {
  it("reads every row of 2,000 computes (one line far past the pool's 64 KiB tail) and returns counts, not rows", async () => {
    // What the read script prints on a cloud of 2,000 computes at nova 31.0.0's service version
    // 68: one marker line of ~400 KB. The 1,000-compute scale lab failed here before.
    const generator = [
      'import json, datetime',
      'now = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S")',
      'rows = [dict(id=i, uuid="0b5c6f1e-0000-4000-8000-%012d" % i, host="cmp%d" % i, binary="nova-compute",',
      '             version=68, last_seen_up=now, created_at=now, forced_down=False, deleted=0) for i in range(1, 2001)]',
      `print("${SERVICE_ROWS_MARKER} " + json.dumps([dict(cell="cell1", rows=rows)]))`,
    ].join('\n');
    node.write('service-rows.py', generator);
    const acts = createServiceRecordActivities({ runner: node.runner });
    const r = await activityEnv().run(acts.checkServiceVersions, {
      target: node.target,
      command: `python3 "$FAKE_STATE/service-rows.py"`,
      to: '31.0.0',
      inventoryComputeHosts: Array.from({ length: 2000 }, (_, i) => `cmp${i + 1}`),
      excludedHosts: [],
      cells: ['cell1'],
    });
    expect(r.rowsPerCell).toEqual({ cell1: 2000 });
    expect(r.summary).toMatch(/^read 2000 service records in cell1: /);
    // The result does not grow with the fleet: no row is carried back to the workflow.
    expect(JSON.stringify(r).length).toBeLessThan(16 * 1024);
  });
});
