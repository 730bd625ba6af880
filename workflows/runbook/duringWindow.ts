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
import { runPartsAtOnce } from './atOnce';
import { installCodeStep, restartGroupStep, restartStep } from './install';
import { pinCommands, setUpgradeLevels } from './pin';
import type { PlanOptions, RunbookStep } from './types';

export function duringWindowSteps(inv: Inventory, installed: Set<string>, opts: PlanOptions = {}): RunbookStep[] {
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
  const pinned = inv.nodes.filter((x) => x.configFiles.length && !isComputeOnly(x));
  if (opts.syncsAndPinsAtOnce && pinned.length) {
    // Every node at once: each pin is a read and an atomic write of that node's own files. The
    // control nodes are few (compute-only nodes are pinned by their batch), so no bound.
    const done = new Set<string>();
    steps.push({
      id: 'pin-compute-rpc',
      phase,
      title: `set [upgrade_levels] compute = auto on every node at once (${pinned.map((n) => n.name).join(', ')})`,
      commands: pinned.flatMap((n) => n.configFiles.flatMap((f) => pinCommands(inv, n.name, f))),
      run: (rt) =>
        runPartsAtOnce({
          parts: pinned,
          name: (n) => n.name,
          run: (n) => setUpgradeLevels(rt.ops, n),
          done,
          failed: 'setting [upgrade_levels] compute = auto failed on',
          succeeded: 'set on',
          allDone: 'every node was pinned already',
        }),
    });
  } else {
    for (const n of pinned) {
      steps.push({
        id: `pin-compute-rpc:${n.name}`,
        phase,
        title: `set [upgrade_levels] compute = auto on ${n.name}`,
        node: n.name,
        commands: n.configFiles.flatMap((f) => pinCommands(inv, n.name, f)),
        run: (rt) => setUpgradeLevels(rt.ops, n),
      });
    }
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
  // "Starting with n-cond restart all services except n-api and n-cpu" (the seed's runbook).
  if (opts.restartsAtOnce) {
    // Every conductor at once, then every other control service at once, as kolla-ansible's
    // handlers restart a service's containers on all its hosts in parallel. The conductors
    // come first: services on the new code must find a conductor that speaks it. On the quiet
    // default lab the five controller restarts took 3.2 s one after another (0.6-0.7 s each,
    // bench/steps.ts); at once they take about the slowest of each group.
    const restarts = inPlaceRestarts(inv);
    const groups = [
      {
        id: 'restart-conductors',
        what: 'every nova-conductor',
        units: restarts.filter((r) => r.kind === 'conductor'),
      },
      {
        id: 'restart-control-services',
        what: 'every other control service',
        units: restarts.filter((r) => r.kind !== 'conductor'),
      },
    ];
    for (const g of groups.filter((x) => x.units.length)) {
      for (const node of [...new Set(g.units.map((r) => r.node))]) steps.push(...installOnce(node));
      const byNode = [...new Set(g.units.map((r) => r.node))].map(
        (node) =>
          `${node}: ${g.units
            .filter((r) => r.node === node)
            .map((r) => r.unit)
            .join(', ')}`,
      );
      steps.push(restartGroupStep(inv, phase, g.id, `restart ${g.what} at once (${byNode.join('; ')})`, g.units));
    }
  } else {
    // Conductors first (RESTART_ORDER), then the other control services, each on its new code.
    for (const r of inPlaceRestarts(inv)) {
      steps.push(...installOnce(r.node), restartStep(inv, phase, r.node, r.unit));
    }
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
      run: computeBatchRun(inv, batch, batches.length, batches[batch.index]),
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
