// The runbook, declared once (as kolla-ansible's ansible/nova.yml declares its plays): every
// line of nova's minimal-downtime upgrade, in the order it runs, with the commands it runs on
// each host. `--dry-run` prints this list; the novaUpgrade workflow runs it. Adding a step is
// one entry in a phase file here, one function in workflows/ops/ and one activity.
//
// Why this order (nova's upgrade guide, doc/source/admin/upgrades.rst):
//   before-upgrade  prove the cloud healthy through the VIP, so later failures are the upgrade's;
//   before-window   new code on the controller, then the additive schema migrations;
//   during-window   placement, the RPC pin, the upgrade check, conductors first, computes in
//                   batches, then each nova-api behind its drain while tempest runs;
//   after-window    SIGHUP lifts the pin, orphans are found, online data migrations finish.
import type { Inventory } from '../../inventory/schema';
import { afterWindowSteps } from './afterWindow';
import { beforeUpgradeSteps } from './beforeUpgrade';
import { beforeWindowSteps } from './beforeWindow';
import { duringWindowSteps } from './duringWindow';
import { CURRENT_PLAN, type PlanOptions, type PlannedStep, type RunbookStep } from './types';
import { nodesUsingSudo } from '../../common/sudo';
import { cellsStep, nodeAccessStep, serviceVersionsStep } from './beforeUpgrade';

export type { PlannedStep, PlanOptions, RunbookStep, RunContext, Mark } from './types';
export { CURRENT_PLAN } from './types';

/**
 * `opts` are the plan's shapes that changed after a release: the workflow passes what its
 * `patched()` markers say, so a run started earlier keeps its plan; the dry run shows today's.
 */
export function planUpgrade(inv: Inventory, opts: PlanOptions = CURRENT_PLAN): RunbookStep[] {
  // The controller's code is installed before the window; other nodes at their first restart.
  const installed = new Set([inv.controller]);
  const rest = [
    ...beforeUpgradeSteps(inv),
    ...beforeWindowSteps(inv, opts),
    ...duringWindowSteps(inv, installed, opts),
    ...afterWindowSteps(inv, opts),
  ];
  // First of all, before anything changes: every node takes the login, and sudo needs no
  // password where the plan's commands use it (nobody is there to type one mid-window).
  // Then nova's own cells: every cell must be in the inventory, or its database is never synced.
  // Then every cell's services rows against the target's envelope (read through those cells).
  const steps = [
    nodeAccessStep(inv, nodesUsingSudo(rest.flatMap((s) => s.commands))),
    cellsStep(inv),
    serviceVersionsStep(inv),
    ...rest,
  ];
  const seen = new Set<string>();
  for (const s of steps) {
    // Progress is keyed by step id; a duplicate would merge two steps' states into one.
    if (seen.has(s.id)) throw new Error(`the plan has step ${s.id} twice`);
    seen.add(s.id);
  }
  return steps;
}

/** The plan without its code, as `--dry-run --json` and the progress carry it. */
export function plannedSteps(inv: Inventory): PlannedStep[] {
  // A retired step runs only in upgrades started before it was replaced; the plan of a new one lacks it.
  return planUpgrade(inv)
    .filter((s) => !s.retiredBy)
    .map(({ id, phase, title, node, commands }) => ({
      id,
      phase,
      title,
      commands,
      ...(node ? { node } : {}),
    }));
}
