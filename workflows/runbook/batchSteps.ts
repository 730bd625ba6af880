// One compute batch, line by line: declared once, run by the upgradeComputeBatch child and
// printed by `--dry-run` under the batch's step. Why this order: a compute is taken out of
// scheduling, and its instances' tasks have ended, before its nova-compute stops; it comes back
// only once a heartbeat from the new process proves it runs (an old heartbeat stays "up" for
// service_down_time). The child runs the disable and the task wait beside the nodes' installs
// (new code on disk changes nothing the running process does), and no stop before both ended.
import type { Outcome } from '../../common/messages';
import {
  cmd,
  computeUnit,
  isComputeOnly,
  nodeByName,
  type ComputeBatch,
  type PlannedCommand,
} from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import type { Ops } from '../ops';
import { pinCommands, setUpgradeLevels } from './pin';

export interface BatchContext {
  ops: Ops;
  /** The parent step's run key: detached commands reattach across worker deaths. */
  key: string;
  /** Per nova host, workflow time once its nova-compute was stopped. */
  stoppedAt: Record<string, string>;
  /** Hosts an operator had disabled before the upgrade: they stay disabled. */
  leftDisabled: string[];
}

export interface BatchStep {
  /** What the child is doing, as its current details and a failure say it. */
  title: string;
  commands: PlannedCommand[];
  run: (b: BatchContext) => Promise<Outcome>;
}

export function computeBatchSteps(inv: Inventory, batch: ComputeBatch, label: string): BatchStep[] {
  const ctl = inv.controller;
  const nodes = batch.nodes.map((n) => nodeByName(inv, n));
  const hosts = nodes.map((n) => n.novaHost);
  const list = hosts.join(', ');
  const steps: BatchStep[] = [];
  // A compute-only node has no earlier pin step: its nova.conf is pinned in its own batch.
  for (const n of nodes.filter(isComputeOnly)) {
    steps.push({
      title: `set [upgrade_levels] compute = auto on ${n.name}`,
      commands: n.configFiles.flatMap((f) => pinCommands(inv, n.name, f)),
      run: (b) => setUpgradeLevels(b.ops, n),
    });
  }
  const reason = `nova-upgrade to ${inv.release.to} (${label})`;
  steps.push(
    {
      title: `disable ${list} for scheduling`,
      commands: hosts.map((host) => ({ node: ctl, command: cmd(inv, 'computeServiceDisable', { host, reason }) })),
      run: (b) => b.ops.computes.disableComputeServices(hosts, reason),
    },
    // A restart under a running migration or resize would break the instance's task.
    {
      title: `wait until no instance task is in progress on ${list}`,
      commands: hosts.map((host) => ({ node: ctl, command: cmd(inv, 'serverTasksOnHost', { host }) })),
      run: (b) => b.ops.computes.waitForNoTasksInProgress(hosts),
    },
  );
  for (const n of nodes) {
    const unit = computeUnit(n);
    steps.push(
      {
        title: `install nova ${inv.release.to} on ${n.name}`,
        commands: [{ node: n.name, command: cmd(inv, 'installCode', { version: inv.release.to, node: n.name }) }],
        run: (b) => b.ops.nova.installCode(n.name, `${b.key}/install-${n.name}`),
      },
      // A graceful stop lets nova-compute finish what it is doing; then it starts on the new code.
      {
        title: `restart ${unit} on ${n.name} (graceful stop, start on new code)`,
        commands: [
          { node: n.name, command: cmd(inv, 'serviceStop', { unit, node: n.name }) },
          { node: n.name, command: cmd(inv, 'serviceStart', { unit, node: n.name }) },
        ],
        run: async (b) => {
          const key = `${b.key}/restart-${n.name}`;
          const stop = await b.ops.services.stopService(n.name, unit, `${key}/stop`);
          // Workflow time once the stop is done: a heartbeat newer than it can only come from the new process.
          b.stoppedAt[n.novaHost] = new Date().toISOString();
          const start = await b.ops.services.startService(n.name, unit, `${key}/start`, 'on the new code');
          return {
            summary: `${stop.summary}; ${start.summary}`,
            alreadyDone: !!stop.alreadyDone && !!start.alreadyDone,
          };
        },
      },
    );
  }
  steps.push(
    {
      title: `wait until ${list} report up with a fresh heartbeat`,
      commands: [{ node: ctl, command: cmd(inv, 'serviceList') }],
      run: (b) => b.ops.computes.waitForComputesUp(hosts, b.stoppedAt),
    },
    {
      title: `enable ${list} for scheduling`,
      commands: hosts.map((host) => ({ node: ctl, command: cmd(inv, 'computeServiceEnable', { host }) })),
      run: async (b) => {
        const out = await b.ops.computes.enableComputeServices(hosts);
        b.leftDisabled.push(...(out.leftDisabled ?? []).map((l) => l.host));
        return out;
      },
    },
  );
  return steps;
}
