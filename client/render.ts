// Text views of an upgrade's progress for `status` and `watch`.
import type { Progress, StepState } from '../workflows/definitions';

const MARK: Record<StepState['status'], string> = {
  pending: '·',
  running: '▶',
  succeeded: '✓',
  failed: '✗',
  skipped: '↷',
  held: '!',
};

function pad(s: string, n: number): string {
  return s.length >= n ? `${s.slice(0, n - 1)}…` : s + ' '.repeat(n - s.length);
}

function stepNote(s: StepState): string {
  if (s.status === 'held' || s.status === 'failed') return s.error ?? '';
  if (s.status === 'skipped') return `skipped: ${s.skipReason ?? ''}`;
  const parts = [s.alreadyDone ? 'already done' : '', s.summary ?? '', s.operatorRetries ? `${s.operatorRetries} operator retr${s.operatorRetries === 1 ? 'y' : 'ies'}` : ''];
  return parts.filter(Boolean).join(' — ');
}

export function headline(p: Progress): string {
  const parts = [`nova ${p.from} → ${p.to} on ${p.cloud}`, `status: ${p.status}`];
  if (p.phase) parts.push(`phase: ${p.phase}`);
  if (p.compute.batchesTotal) parts.push(`computes: ${p.compute.nodesDone}/${p.compute.nodesTotal} nodes`);
  if (p.probe) parts.push(`probe: ${p.probe.failedRequests}/${p.probe.requests} failed`);
  return parts.join('   ');
}

/** What the operator must do next, with the exact command. */
export function nextAction(p: Progress): string[] {
  const out: string[] = [];
  if (p.pendingApproval) {
    out.push(`Waiting for approval of phase ${p.pendingApproval.phase}:`, `  ${p.pendingApproval.command}`);
    for (const w of p.pendingApproval.warnings) out.push(`  warning: ${w}`);
  }
  if (p.pendingDecision) {
    out.push(`Held at ${p.pendingDecision.stepId}: ${p.pendingDecision.error}`, 'Choose one:', ...p.pendingDecision.commands.map((c) => `  ${c}`));
  }
  if (p.drain) out.push(`Draining ${p.drain.server}: ${Object.entries(p.drain.sessions).map(([lb, n]) => `${lb} ${n} sessions`).join(', ')}`);
  return out;
}

export function progressTable(p: Progress, opts: { onlyPhase?: boolean } = {}): string {
  const lines = [headline(p), ''];
  const steps = opts.onlyPhase && p.phase ? p.steps.filter((s) => s.phase === p.phase) : p.steps;
  let phase = '';
  for (const s of steps) {
    if (s.phase !== phase) {
      phase = s.phase;
      const approval = p.approvals.find((a) => a.phase === phase);
      lines.push(`${phase}${approval ? `  (approved by ${approval.approver}${approval.auto ? ', automatically' : ''}${approval.comment ? `: ${approval.comment}` : ''})` : ''}`);
    }
    lines.push(`  ${MARK[s.status]} ${pad(s.title, 58)} ${pad(s.status, 10)} ${stepNote(s)}`.trimEnd());
  }
  const next = nextAction(p);
  if (next.length) lines.push('', ...next);
  if (p.warnings.length) lines.push('', 'Warnings:', ...p.warnings.map((w) => `  - ${w}`));
  return lines.join('\n');
}

/** One line per change, for logs and pipes where a redrawn screen would be noise. */
export function changedLines(prev: Progress | undefined, cur: Progress): string[] {
  const out: string[] = [];
  const before = new Map(prev?.steps.map((s) => [s.id, s]) ?? []);
  if (prev?.status !== cur.status || prev?.phase !== cur.phase) out.push(`[${cur.status}] phase ${cur.phase ?? '-'}`);
  for (const s of cur.steps) {
    const b = before.get(s.id);
    if (b?.status !== s.status && !(b === undefined && s.status === 'pending')) out.push(`${MARK[s.status]} ${s.title}: ${s.status}${stepNote(s) ? ` — ${stepNote(s)}` : ''}`);
  }
  if (cur.pendingApproval && !prev?.pendingApproval) out.push(...nextAction(cur));
  if (cur.pendingDecision && !prev?.pendingDecision) out.push(...nextAction(cur));
  return out;
}
