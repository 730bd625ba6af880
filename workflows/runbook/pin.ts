// `[upgrade_levels] compute = auto` in every nova.conf of a node: services then speak the RPC
// version of the oldest compute, and move up on the SIGHUP after the last one is upgraded.
import type { Outcome } from '../../common/messages';
import type { Node } from '../../inventory/schema';
import type { Ops } from '../ops';

export async function setUpgradeLevels(ops: Ops, n: Node): Promise<Outcome> {
  const results = await Promise.all(n.configFiles.map((path) => ops.nova.setUpgradeLevelsCompute(n.name, path)));
  return { summary: results.map((r) => r.summary).join('; '), alreadyDone: results.every((r) => r.alreadyDone) };
}
