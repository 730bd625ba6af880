// `[upgrade_levels] compute = auto` in every nova.conf of a node: services then speak the RPC
// version of the oldest compute, and move up on the SIGHUP after the last one is upgraded.
import type { Outcome } from '../../common/messages';
import { cmd, type PlannedCommand } from '../../common/topology';
import type { Inventory, Node } from '../../inventory/schema';
import type { Ops } from '../ops';

export async function setUpgradeLevels(ops: Ops, n: Node): Promise<Outcome> {
  const results = await Promise.all(n.configFiles.map((path) => ops.nova.setUpgradeLevelsCompute(n.name, path)));
  return { summary: results.map((r) => r.summary).join('; '), alreadyDone: results.every((r) => r.alreadyDone) };
}

/** What the dry run shows for one file: the read, then the atomic write through the writeFile template. */
export function pinCommands(inv: Inventory, node: string, path: string): PlannedCommand[] {
  return [
    { node, command: cmd(inv, 'readFile', { path }) },
    {
      node,
      command: cmd(inv, 'writeFile', {
        path,
        script: `<write ${path} with [upgrade_levels] compute = auto, atomically, with a backup>`,
      }),
    },
  ];
}
