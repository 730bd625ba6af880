// The restart as one run on the node (issue 16), over a real sshd against the systemctl double:
// it restarts once, a retry with the same key (a worker that died) reattaches to the run and
// judges the same before and after without a second restart, and a restart whose new process
// dies at once fails the step with the unit's state.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_COMMANDS, renderCommand } from '../inventory/commands';
import { createServiceActivities } from '../activities/nova/services';
import { startFakeNovaNode, type FakeNovaNode } from './helpers/novaNode';
import { activityEnv, failureOf } from './helpers/activityEnv';

let node: FakeNovaNode;
let acts: ReturnType<typeof createServiceActivities>;
beforeAll(async () => {
  node = await startFakeNovaNode('apicomp', '127.0.37.50');
  acts = createServiceActivities({ runner: node.runner });
});
afterAll(() => node?.stop());

const cmd = (name: 'serviceState' | 'serviceRestart', unit: string) =>
  renderCommand(name, DEFAULT_COMMANDS[name], { unit, node: 'apicomp' });

const input = (unit: string, key: string) => ({
  target: node.target,
  unit,
  stateCommand: cmd('serviceState', unit),
  statusCommand: `systemctl status --no-pager ${unit}`,
  restartCommand: cmd('serviceRestart', unit),
  timeoutMs: 3000,
  pollMs: 100,
  key,
  stateDir: node.stateDir,
});

describe('restartServiceChecked', () => {
  it('restarts once in one run; the retry with the same key finds the run and does not restart again', async () => {
    const unit = 'devstack@n-cond-cell1';
    const first = await activityEnv().run(acts.restartServiceChecked, input(unit, 'wf1/restart-cond/r0'));
    expect(first).toMatchObject({ alreadyDone: false, summary: `restarted ${unit} on apicomp (main pid 1000 → 1001)` });
    expect(first.commands.map((c) => c.command)).toEqual([cmd('serviceRestart', unit)]);
    const retry = await activityEnv().run(acts.restartServiceChecked, input(unit, 'wf1/restart-cond/r0'));
    expect(retry.summary).toMatch(/main pid 1000 → 1001\), found done by its run on the node/);
    expect(node.count(`units/${unit}/restarts`)).toBe(1);
  });

  it('a restart whose new process dies at once fails the step, naming the unit and its state', async () => {
    const unit = 'devstack@n-sch';
    node.write(`units/${unit}/broken`, '');
    const f = await failureOf(activityEnv().run(acts.restartServiceChecked, input(unit, 'wf1/restart-sch/r0')));
    expect(f.type).toBe('NovaServiceFailedToStart');
    expect(f.message).toMatch(/devstack@n-sch on apicomp did not become active after the restart/);
    expect(f.message).toMatch(/ActiveState=failed/);
  });
});
