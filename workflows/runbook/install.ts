// Installing the new code on a node: one runbook line per node, at the first step that needs it.
import { patched } from '@temporalio/workflow';
import { cmd } from '../../common/topology';
import type { Phase } from '../../common/messages';
import type { Inventory } from '../../inventory/schema';
import { runPartsAtOnce } from './atOnce';
import type { RunbookStep } from './types';

export function installCodeStep(inv: Inventory, phase: Phase, node: string): RunbookStep {
  return {
    id: `install-code:${node}`,
    phase,
    title: `install nova ${inv.release.to} on ${node}`,
    node,
    commands: [
      { node, command: cmd(inv, 'codeVersion') },
      { node, command: cmd(inv, 'installCode', { version: inv.release.to, node }) },
    ],
    run: (rt, key) => rt.ops.nova.installCode(node, key),
  };
}

/**
 * A restart that proves itself: the state read first is recorded in history, so a retry sees
 * whether the restart already took effect (a new MainPID and start time) and does not repeat it.
 */
export function restartStep(inv: Inventory, phase: Phase, node: string, unit: string): RunbookStep {
  return {
    id: `restart:${node}:${unit}`,
    phase,
    title: `restart ${unit} on ${node}`,
    node,
    commands: [{ node, command: cmd(inv, 'serviceRestart', { unit, node }) }],
    exposes: { during: [{ service: { node, unit } }] },
    run: async (rt, key) => {
      // One activity and one run on the node (issue 16); runs started before keep two.
      if (patched('restart-one-exchange')) return rt.ops.services.restartServiceChecked(node, unit, key);
      const before = await rt.ops.services.readServiceState(node, unit);
      return rt.ops.services.restartService(
        node,
        unit,
        {
          mainPid: before.mainPid,
          startedMonotonic: before.startedMonotonic,
          // A container's id and start time, where the profile reads one (kolla).
          ...(before.identity !== undefined ? { identity: before.identity } : {}),
        },
        key,
      );
    },
  };
}

/**
 * Several in-place restarts as one runbook line, all at once (each still one checked run on its
 * node, keyed by the step's attempt and the unit, so an activity retry reattaches and never
 * restarts twice). A unit that fails is named; the others keep their restart, and an operator's
 * retry restarts only the rest. (A run started before `restarts-at-once` plans the one-per-service
 * steps from its start, so it never meets this step half-way.)
 */
export function restartGroupStep(
  inv: Inventory,
  phase: Phase,
  id: string,
  title: string,
  group: { node: string; unit: string }[],
): RunbookStep {
  const done = new Set<string>();
  const name = (r: { node: string; unit: string }) => `${r.unit} on ${r.node}`;
  return {
    id,
    phase,
    title,
    commands: group.map(({ node, unit }) => ({ node, command: cmd(inv, 'serviceRestart', { unit, node }) })),
    exposes: { during: group.map(({ node, unit }) => ({ service: { node, unit } })) },
    run: (rt, key) =>
      runPartsAtOnce({
        parts: group,
        name,
        run: (r) => rt.ops.services.restartServiceChecked(r.node, r.unit, `${key}/${r.node}/${r.unit}`),
        done,
        failed: 'restart failed for',
        succeeded: 'restarted',
        allDone: 'every service of this step was restarted already',
      }),
  };
}
