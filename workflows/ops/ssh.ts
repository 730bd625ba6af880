// The node-access preflight, as the runbook calls it: one activity for every node (runs started
// before `node-access-in-chunks`), or one per chunk of nodes.
import { proxyActivities } from '@temporalio/workflow';
import type { createSshPreflightActivities } from '../../activities/ssh/preflight';
import { targetOf } from '../../common/topology';
import { sshTargetFor, type SshTarget } from '../../common/sshTarget';
import type { Inventory, Node } from '../../inventory/schema';
import { activityOptions, proxyDefaults } from './options';

export function sshOps(inv: Inventory) {
  const acts = proxyActivities<ReturnType<typeof createSshPreflightActivities>>(proxyDefaults(inv));
  return {
    /** Logs in to every node; checks `sudo -n true` on those whose commands use sudo. */
    checkNodesAccess: (sudoNodes: string[]) =>
      acts.checkNodesAccess.executeWithOptions(
        activityOptions(inv, 'long', `log in to every node; sudo -n true on ${sudoNodes.join(', ') || 'none'}`),
        [
          {
            nodes: inv.nodes.map((n) => ({
              target: targetOf(inv, n.name),
              sudo: sudoNodes.includes(n.name),
              timeoutMs: inv.timeouts.readSeconds * 1000,
            })),
          },
        ],
      ),
    /** Logs in to these nodes (a chunk of the fleet); `sudo -n true` on those in `sudo`. */
    checkNodesAccessChunk: (nodes: Node[], sudo: ReadonlySet<string>, label: string) =>
      acts.checkNodesAccessChunk.executeWithOptions(
        activityOptions(
          inv,
          'long',
          `log in to ${label}; sudo -n true on the ${nodes.filter((n) => sudo.has(n.name)).length} that use it`,
        ),
        [
          {
            nodes: nodes.map((n) => ({
              target: sshTargetFor(inv, n),
              sudo: sudo.has(n.name),
              timeoutMs: inv.timeouts.readSeconds * 1000,
            })),
          },
        ],
      ),
    /** Logs in to the next batch's nodes ahead of it; never fails, and is not retried. */
    openConnections: (targets: SshTarget[], label: string) => {
      const o = activityOptions(inv, 'short', `log in to ${label}'s ${targets.length} node(s) ahead of it`);
      return acts.openConnections.executeWithOptions({ ...o, retry: { ...o.retry, maximumAttempts: 1 } }, [
        { targets, timeoutMs: inv.timeouts.readSeconds * 1000 },
      ]);
    },
  };
}

export type SshOps = ReturnType<typeof sshOps>;
