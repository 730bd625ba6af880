// Which nodes a lab has, what each runs and where it listens: a pure function of the options,
// so labUp, labDown and labStatus all agree on it.
import type { Role } from '../inventory/schema';
import { NOVA_UNITS } from './node/layout';
import { virtualComputes } from './fleet';

export interface TopologyOptions {
  subnet: string;
  apiNodes: number;
  computeOnlyNodes: number;
  lbNodes: number;
  sshPort: number;
  /** The scale lab's virtual computes (lab/fleet.ts), on the /24s after the subnet. */
  virtualComputes?: number;
  /**
   * Cells with computes (the real lab): 1 is cell1 only; 2 adds cell2 and one compute-only
   * node in it, `cell2-compute1`, after the other nodes.
   */
  cells?: number;
}

export interface LabLb {
  /** The node whose role list carries lb (and over whose SSH the admin socket is reached). */
  node: string;
  /** The VIP this HAProxy binds; only the first one is the inventory's vip.url. */
  address: string;
  port: number;
}

export interface LabNodePlan {
  name: string;
  address: string;
  sshPort: number;
  roles: Role[];
  units: string[];
  /** A virtual compute of the scale lab: no sshd of its own, shell stand-ins (lab/fleet.ts). */
  virtual?: boolean;
  /** The cell of this node's nova-compute: cell1 unless the lab has more cells. */
  cell?: string;
}

export const API_PORT = 8774;
export const VIP_PORT = 8282;

const CONTROLLER_UNITS = [
  NOVA_UNITS.superConductor,
  NOVA_UNITS.cellConductor,
  NOVA_UNITS.scheduler,
  NOVA_UNITS.metadata,
  NOVA_UNITS.console,
  NOVA_UNITS.placement,
];

export function unitsFor(roles: Role[]): string[] {
  return [
    ...(roles.includes('controller') ? CONTROLLER_UNITS : []),
    ...(roles.includes('api') ? [NOVA_UNITS.api] : []),
    ...(roles.includes('compute') ? [NOVA_UNITS.compute] : []),
  ];
}

export function planTopology(o: TopologyOptions): { nodes: LabNodePlan[]; lbs: LabLb[] } {
  if (!/^127\.\d{1,3}\.\d{1,3}$/.test(o.subnet))
    throw new Error(`lab subnet must be three octets inside 127.0.0.0/8, such as 127.0.1 (got "${o.subnet}")`);
  if (o.apiNodes < 1) throw new Error('a lab needs at least one API node (the controller)');
  if (o.lbNodes < 1) throw new Error('a lab needs at least one load balancer');
  const cellNodes = Math.max(0, (o.cells ?? 1) - 1);
  const total = o.apiNodes + o.computeOnlyNodes + cellNodes;
  if (total + Math.max(0, o.lbNodes - total) > 97) throw new Error('a lab subnet holds at most 97 nodes (.2 to .98)');
  // The seed's topology: "controller" runs everything, "apicomp" runs n-api and n-cpu.
  const names = [
    ...Array.from({ length: o.apiNodes }, (_, i) => (i === 0 ? 'controller' : i === 1 ? 'apicomp' : `apicomp${i}`)),
    ...Array.from({ length: o.computeOnlyNodes }, (_, i) => `compute${i + 1}`),
    // One compute of its own in each cell after cell1: cell2-compute1, …
    ...Array.from({ length: cellNodes }, (_, k) => `cell${k + 2}-compute1`),
    ...Array.from({ length: Math.max(0, o.lbNodes - total) }, (_, i) => `lb${i + 1}`),
  ];
  const nodes = names.map((name, i): LabNodePlan => {
    const roles: Role[] =
      i === 0 ? ['controller', 'api', 'compute'] : i < o.apiNodes ? ['api', 'compute'] : i < total ? ['compute'] : [];
    // As in the seed, HAProxy runs on the nova nodes themselves; extra ones get their own node.
    if (i < o.lbNodes) roles.push('lb');
    const cell =
      i >= o.apiNodes + o.computeOnlyNodes && i < total ? `cell${i - o.apiNodes - o.computeOnlyNodes + 2}` : undefined;
    return {
      name,
      address: `${o.subnet}.${i + 2}`,
      sshPort: o.sshPort,
      roles,
      units: unitsFor(roles),
      ...(cell ? { cell } : {}),
    };
  });
  // keepalived is not simulated: each HAProxy binds its own VIP-like address.
  const lbs = nodes
    .filter((n) => n.roles.includes('lb'))
    .map((n, k): LabLb => ({ node: n.name, address: `${o.subnet}.${100 + k}`, port: VIP_PORT }));
  const virtual = virtualComputes(o.subnet, o.virtualComputes ?? 0).map((v): LabNodePlan => ({
    ...v,
    sshPort: o.sshPort,
    roles: ['compute'],
    units: unitsFor(['compute']),
    virtual: true,
  }));
  return { nodes: [...nodes, ...virtual], lbs };
}
