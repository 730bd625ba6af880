// In the window: placement first, the RPC pin, the upgrade check, the control services
// (conductors first), the computes in batches, then every nova-api behind its drain.
import { patched } from '@temporalio/workflow';
import {
  cmd,
  computeBatches,
  computeUnit,
  inPlaceRestarts,
  isComputeOnly,
  nodeByName,
  placementInstallCommand,
} from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import { batchEstimate } from '../window';
import { apiServerSteps } from './apiServers';
import { computeBatchSteps } from './batchSteps';
import { computeBatchRun } from './computeBatchStep';
import { installCodeStep, restartStep } from './install';
import { pinCommands, setUpgradeLevels } from './pin';
import type { RunbookStep } from './types';

export function duringWindowSteps(inv: Inventory, installed: Set<string>): RunbookStep[] {
  const ctl = inv.controller;
  const phase = 'during-window';
  const steps: RunbookStep[] = [];
  // One install line per node, at the first step that needs the node's new code.
  const installOnce = (node: string): RunbookStep[] => {
    if (installed.has(node)) return [];
    installed.add(node);
    return [installCodeStep(inv, phase, node)];
  };

  // Placement before nova: new nova may ask placement for a newer microversion.
  steps.push({
    id: 'upgrade-placement',
    phase,
    title: `upgrade placement on ${ctl}`,
    node: ctl,
    commands: [
      { node: ctl, command: placementInstallCommand(inv) },
      { node: ctl, command: cmd(inv, 'upgradePlacement', { version: inv.release.to, node: ctl }) },
    ],
    run: async (rt, key) => {
      // Runs started before it replay without the install (they synced and restarted the code
      // already there).
      const install = patched('placement-installs-code')
        ? await rt.ops.nova.installPlacement(`${key}/install`)
        : undefined;
      const out = await rt.ops.nova.upgradePlacement(key);
      return { summary: install ? `${install.summary}; ${out.summary}` : out.summary };
    },
  });
  // Before any service restarts on the new code, so none sends messages old computes can't read.
  for (const n of inv.nodes.filter((x) => x.configFiles.length && !isComputeOnly(x))) {
    steps.push({
      id: `pin-compute-rpc:${n.name}`,
      phase,
      title: `set [upgrade_levels] compute = auto on ${n.name}`,
      node: n.name,
      commands: n.configFiles.flatMap((f) => pinCommands(inv, n.name, f)),
      run: (rt) => setUpgradeLevels(rt.ops, n),
    });
  }
  // nova-status: 0 ok, 1 warning (carried to the next gate), 2 and 255 hold here.
  steps.push({
    id: 'upgrade-check',
    phase,
    title: 'nova-status upgrade check',
    node: ctl,
    commands: [{ node: ctl, command: cmd(inv, 'upgradeCheck') }],
    run: async (rt) => {
      const r = await rt.ops.nova.runUpgradeCheck();
      const warnings = rt.state.progress.warnings;
      for (const w of r.warnings.map((x) => `nova-status: ${x.name}: ${x.details ?? 'warning'}`))
        if (!warnings.includes(w)) warnings.push(w);
      return { summary: r.summary };
    },
  });
  // Conductors first (RESTART_ORDER), then the other control services, each on its new code.
  for (const r of inPlaceRestarts(inv)) {
    steps.push(...installOnce(r.node), restartStep(inv, phase, r.node, r.unit));
  }
  const batches = computeBatches(inv);
  for (const batch of batches) {
    const nodes = batch.nodes.map((name) => nodeByName(inv, name));
    const label = `batch ${batch.index}/${batches.length}`;
    steps.push({
      id: `compute-batch:${batch.index}`,
      phase,
      title: `upgrade nova-compute ${label} (${batch.nodes.join(', ')})`,
      commands: computeBatchSteps(inv, batch, label).flatMap((s) => s.commands),
      exposes: {
        during: [
          ...nodes.map((n) => ({ service: { node: n.name, unit: computeUnit(n) } })),
          ...nodes.map((n) => ({ compute: n.novaHost })),
        ],
      },
      window: { what: label, estimate: (rt) => batchEstimate(inv, rt.state, batch.nodes.length) },
      run: computeBatchRun(inv, batch, batches.length),
    });
  }
  // Every compute on the new code before any nova-api serves the new release's API.
  if (inv.tempest.enabled) {
    steps.push({
      id: 'tempest-after-computes',
      phase,
      title: `run tempest on ${inv.tempest.host}`,
      node: inv.tempest.host,
      commands: [{ node: inv.tempest.host, command: cmd(inv, 'tempest') }],
      run: (rt, key) => rt.ops.tempest.runTempest(key),
    });
  }
  steps.push(...apiServerSteps(inv, installOnce));
  return steps;
}
