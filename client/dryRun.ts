// `start --dry-run`: every command of the runbook, host by host, from the inventory alone.
// Pure, so the golden files under test/fixtures/dry-run/ hold exactly what an operator sees.
import type { Phase } from '../common/messages';
import { describeJump } from '../inventory/jump';
import type { Inventory } from '../inventory/schema';
import { plannedSteps } from '../workflows/runbook';

export function dryRunLines(inv: Inventory, autoApprove: readonly Phase[] = []): string[] {
  const lines: string[] = [];
  const jump = describeJump(inv.release.from, inv.release.to);
  lines.push(`nova ${jump.summary}`);
  for (const d of jump.differences) lines.push(`  - ${d}`);
  let phaseName = '';
  for (const s of plannedSteps(inv)) {
    if (s.phase !== phaseName)
      lines.push(
        `\n== ${(phaseName = s.phase)}${autoApprove.includes(s.phase) ? ' (auto-approved)' : ' (waits for approval)'}`,
      );
    lines.push(`- ${s.title}`);
    for (const c of s.commands) lines.push(`    [${c.node}] ${indentContinuation(c.command)}`);
  }
  lines.push('\nDry run: nothing was started and no host was contacted.');
  return lines;
}

/** A multi-line command (kolla's recreate) stays readable under its [node] prefix. */
function indentContinuation(command: string): string {
  return command.split('\n').join('\n      ');
}
