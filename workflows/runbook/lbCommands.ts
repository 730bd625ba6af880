// How a runtime-API line reaches each LB, as `--dry-run` shows it.
import type { PlannedCommand } from '../../common/topology';
import { lbNodes } from '../../common/topology';
import type { Inventory, Node } from '../../inventory/schema';

function runtimeCommand(lb: Node, line: string): PlannedCommand {
  const s = lb.lb!.socket;
  const quoted = `'${line}'`;
  if (s.via === 'ssh')
    return { node: lb.name, command: `echo ${quoted} | ${s.sudo ? 'sudo ' : ''}socat ${s.path} stdio` };
  if (s.via === 'unix') return { node: '(worker)', command: `${line}  → unix socket ${s.path} (LB ${lb.name})` };
  return { node: '(worker)', command: `${line}  → tcp ${s.host}:${s.port} (LB ${lb.name})` };
}

export function onEveryLb(inv: Inventory, line: string): PlannedCommand[] {
  return lbNodes(inv).map((lb) => runtimeCommand(lb, line));
}
