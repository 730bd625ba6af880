// What the workflow and the HAProxy activities both say about a load balancer: how it is
// reached, how a server is kept from new traffic, and the weights recorded before a drain.
import type { LbSocket } from '../inventory/schema';
import type { SshTarget } from './sshTarget';

export interface LbTarget {
  /** Inventory node name of the LB: every error names it. */
  node: string;
  socket: LbSocket;
  /** Present when socket.via is ssh. */
  ssh?: SshTarget;
}

/** The inventory's haproxy.drainMode: the seed's weight 0, maintenance, or HAProxy's drain state. */
export type DrainMode = 'weight' | 'disable' | 'drain';

/** LB node → server → the weight it had before the drain, restored by the enable. */
export type RecordedWeights = Record<string, Record<string, number>>;

const DRAIN_SETTING = { weight: 'weight 0', disable: 'state maint', drain: 'state drain' } as const;

/** The words after `set server <backend>/<server>` that drain it in `mode`: the one home of that mapping. */
export function drainSetting(mode: DrainMode): (typeof DRAIN_SETTING)[DrainMode] {
  return DRAIN_SETTING[mode];
}
