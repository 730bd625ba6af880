// `nova-upgrade inventory …`: what an operator checks about an inventory before starting.
//   import     reads kolla-ansible, OpenStack-Ansible or plain Ansible inventories and prints a
//              nova-upgrade inventory, every assumed value commented.
//   check-ssh  logs in to every node from this machine the way the worker will (ssh config,
//              agent, jump hosts, host keys or certificates) and runs `sudo -n true` where the
//              node's planned commands use sudo. Changes nothing on any node.
import { Command, InvalidArgumentError, Option } from 'commander';
import { ApplicationFailure } from '@temporalio/common';
import { loadInventory } from '../inventory/load';
import { createSshPreflightActivities } from '../activities/ssh/preflight';
import { SshPool } from '../activities/ssh/pool';
import { nodesUsingSudo } from '../common/sudo';
import { sshTargetFor } from '../common/sshTarget';
import { plannedSteps as planUpgrade } from '../workflows/runbook';
import { CliError } from './upgrades';
import { ImportError, importInventory, IMPORT_SOURCES, type ImportSource } from '../inventory/import';
import { ROLES, type Role } from '../inventory/schema';

function groupOption(value: string, previous: Partial<Record<Role, string>> = {}): Partial<Record<Role, string>> {
  const m = /^([a-z]+)=(.+)$/.exec(value);
  if (!m || !(ROLES as readonly string[]).includes(m[1]!))
    throw new InvalidArgumentError(`"${value}" is not ROLE=GROUP with a role among ${ROLES.join(', ')}`);
  return { ...previous, [m[1]!]: m[2]! };
}

/** Nodes checked at once: each costs a handshake or two (more through a bastion). */
const CONCURRENCY = 16;

export async function checkSsh(
  file: string,
  out: (line: string) => void,
): Promise<{ ok: string[]; refused: string[] }> {
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
            const r = await checkNodeAccess({
              target: sshTargetFor(inv, n),
              sudo: sudo.has(n.name),
              timeoutMs: inv.timeouts.readSeconds * 1000,
            });
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
  const cmd = new Command('inventory').description('import inventories, and check them before an upgrade');
  cmd
    .command('import')
    .description('print a nova-upgrade inventory made from the inventories a deployment tool keeps')
    .addOption(new Option('--from <tool>', 'what wrote the files').choices([...IMPORT_SOURCES]).makeOptionMandatory())
    .argument(
      '<files...>',
      'kolla-ansible: multinode [globals.yml]; openstack-ansible: openstack_user_config.yml [openstack_inventory.json]; ansible: one INI or YAML inventory',
    )
    .option('--release-from <version>', "nova's version now, e.g. 30.0.0")
    .option('--release-to <version>', "nova's version to upgrade to, e.g. 31.0.0")
    .option('--vip <address-or-url>', "where clients reach nova-api (the VIP's address, or nova-api's URL behind it)")
    .option('--cloud <name>', 'the cloud name (the workflow id is nova-upgrade-<cloud>)')
    .option('--group <role=group>', 'plain Ansible: the group that gives a role (repeatable)', groupOption)
    .option('--nova-on-metal', 'OpenStack-Ansible: nova runs on the hosts themselves, not in LXC containers')
    .action(
      (
        files: string[],
        o: {
          from: ImportSource;
          releaseFrom?: string;
          releaseTo?: string;
          vip?: string;
          cloud?: string;
          group?: Partial<Record<Role, string>>;
          novaOnMetal?: boolean;
        },
      ) => {
        try {
          process.stdout.write(
            importInventory(o.from, files, {
              ...(o.releaseFrom ? { releaseFrom: o.releaseFrom } : {}),
              ...(o.releaseTo ? { releaseTo: o.releaseTo } : {}),
              ...(o.vip ? { vip: o.vip } : {}),
              ...(o.cloud ? { cloud: o.cloud } : {}),
              ...(o.group ? { groups: o.group } : {}),
              ...(o.novaOnMetal ? { novaOnMetal: true } : {}),
            }),
          );
        } catch (err) {
          if (err instanceof ImportError) throw new CliError(`cannot import: ${err.message}`, 2);
          throw err;
        }
      },
    );
  cmd
    .command('check-ssh')
    .description('log in to every node as the worker will, and check sudo where the plan uses it; changes nothing')
    .requiredOption('-i, --inventory <file>', 'inventory YAML')
    .action(async (o: { inventory: string }) => {
      const { ok, refused } = await checkSsh(o.inventory, (line) => process.stdout.write(`${line}\n`));
      process.stdout.write(
        `${ok.length} node${ok.length === 1 ? '' : 's'} ready, ${refused.length} refused; nothing was changed on any node.\n`,
      );
      if (refused.length)
        throw new CliError(
          `${refused.length} node${refused.length === 1 ? '' : 's'} cannot be reached as the upgrade needs: ${refused.join(', ')}`,
          1,
        );
    });
  return cmd;
}
