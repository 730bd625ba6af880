// Before the upgrade: prove the cloud is healthy and reached through the VIP, so that whatever
// fails later is the upgrade's doing. Nothing here changes code or databases.
import { cmd, drainedServices, lbNodes } from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import { onEveryLb } from './lbCommands';
import type { RunbookStep } from './types';

export function beforeUpgradeSteps(inv: Inventory): RunbookStep[] {
  const ctl = inv.controller;
  const phase = 'before-upgrade';
  const servers = drainedServices(inv).map((d) => d.server);
  const steps: RunbookStep[] = [
    // Every API server must be present and UP, and the socket at level admin, before any drain.
    {
      id: 'check-load-balancers',
      phase,
      title: `check HAProxy on ${lbNodes(inv)
        .map((l) => l.name)
        .join(', ')}`,
      commands: onEveryLb(inv, 'show stat'),
      run: (rt) => rt.ops.haproxy.checkLoadBalancers(servers),
    },
    // The seed: clients must reach nova through the VIP, or draining a server hides nothing.
    {
      id: 'point-endpoint-at-vip',
      phase,
      title: `point keystone's compute endpoint at ${inv.vip.computeEndpointUrl}`,
      node: ctl,
      commands: [
        { node: ctl, command: cmd(inv, 'endpointList') },
        { node: ctl, command: cmd(inv, 'endpointSet', { url: inv.vip.computeEndpointUrl, endpointId: '<id>' }) },
      ],
      run: (rt) => rt.ops.nova.pointComputeEndpointAtVip(),
    },
  ];
  // A baseline: a test that already fails before the upgrade is not the upgrade's fault.
  if (inv.tempest.enabled) {
    steps.push({
      id: 'tempest-before',
      phase,
      title: `run tempest on ${inv.tempest.host}`,
      node: inv.tempest.host,
      commands: [{ node: inv.tempest.host, command: cmd(inv, 'tempest') }],
      run: (rt, key) => rt.ops.tempest.runTempest(key),
    });
  }
  for (const n of inv.nodes.filter((x) => x.api)) {
    steps.push({
      id: `check-api:${n.name}`,
      phase,
      title: `check nova-api serves on ${n.name}`,
      node: n.name,
      commands: [{ node: '(worker)', command: `GET ${n.api!.url}/` }],
      run: (rt) => rt.ops.http.checkApiServesVersion(n.name),
    });
  }
  return steps;
}

/** Added after 0.1.0: runs started on 0.1.0 replay without it. */
export function nodeAccessStep(inv: Inventory, sudoNodes: string[]): RunbookStep {
  return {
    id: 'check-node-access',
    phase: 'before-upgrade',
    title: `log in to every node${sudoNodes.length ? `; password-less sudo on ${sudoNodes.join(', ')}` : ''}`,
    commands: inv.nodes.flatMap((n) => [
      { node: n.name, command: 'id -un' },
      ...(sudoNodes.includes(n.name) ? [{ node: n.name, command: 'sudo -n true' }] : []),
    ]),
    patch: 'node-access-preflight',
    run: (rt) => rt.ops.ssh.checkNodesAccess(sudoNodes),
  };
}

/**
 * Added after 0.2.x: nova's cell mappings against the inventory's cells, before anything changes.
 * Runs started earlier replay without it.
 */
export function cellsStep(inv: Inventory): RunbookStep {
  const ctl = inv.controller;
  return {
    id: 'check-cells',
    phase: 'before-upgrade',
    title: `check that nova's cells are the inventory's (${inv.cells.map((c) => c.name).join(', ')})`,
    node: ctl,
    commands: [{ node: ctl, command: cmd(inv, 'cellList') }],
    patch: 'cells-from-nova',
    run: (rt) => rt.ops.nova.checkCells(),
  };
}
