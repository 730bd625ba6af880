// `nova-upgrade inventory …`: what an operator checks about an inventory before starting.
//   check-ssh  logs in to every node from this machine the way the worker will (ssh config,
//              agent, jump hosts, host keys or certificates) and runs `sudo -n true` where the
//              node's planned commands use sudo. Changes nothing on any node.
import { Command } from 'commander';
import { ApplicationFailure } from '@temporalio/common';
import { loadInventory } from '../inventory/load';
import { createSshPreflightActivities } from '../activities/ssh/preflight';
import { SshPool } from '../activities/ssh/pool';
import { nodesUsingSudo } from '../activities/ssh/sudo';
import { sshTargetFor } from '../activities/ssh/types';
import { planUpgrade } from '../workflows/plan';
import { CliError } from './upgrades';

/** Nodes checked at once: each costs a handshake or two (more through a bastion). */
const CONCURRENCY = 16;

export async function checkSsh(file: string, out: (line: string) => void): Promise<{ ok: string[]; refused: string[] }> {
  const inv = loadInventory(file);
  const sudo = new Set(nodesUsingSudo(planUpgrade(inv).flatMap((s) => s.commands)));
  const pool = new SshPool({ maxConnectionsPerHost: 1 });
  const { checkNodeAccess } = createSshPreflightActivities({ runner: pool });
  const ok: string[] = [];
  const refused: string[] = [];
  const queue = [...inv.nodes];
  try {
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, queue.length) }, async () => {
        for (let n = queue.shift(); n; n = queue.shift()) {
          try {
            const r = await checkNodeAccess({ target: sshTargetFor(inv, n), sudo: sudo.has(n.name), timeoutMs: inv.timeouts.readSeconds * 1000 });
            ok.push(n.name);
            out(`ok       ${r.summary}`);
          } catch (err) {
            refused.push(n.name);
            const retry = err instanceof ApplicationFailure && !err.nonRetryable ? ' (may pass on a later try)' : '';
            out(`refused  ${n.name}: ${err instanceof Error ? err.message : String(err)}${retry}`);
          }
        }
      }),
    );
  } finally {
    await pool.close();
  }
  return { ok, refused };
}

export function inventoryCommand(): Command {
  const cmd = new Command('inventory').description('check inventories before an upgrade');
  cmd
    .command('check-ssh')
    .description('log in to every node as the worker will, and check sudo where the plan uses it; changes nothing')
    .requiredOption('-i, --inventory <file>', 'inventory YAML')
    .action(async (o: { inventory: string }) => {
      const { ok, refused } = await checkSsh(o.inventory, (line) => process.stdout.write(`${line}\n`));
      process.stdout.write(`${ok.length} node${ok.length === 1 ? '' : 's'} ready, ${refused.length} refused; nothing was changed on any node.\n`);
      if (refused.length) throw new CliError(`${refused.length} node${refused.length === 1 ? '' : 's'} cannot be reached as the upgrade needs: ${refused.join(', ')}`, 1);
    });
  return cmd;
}
