// The progress query's answer, bounded whatever the fleet. The workflow keeps its whole state;
// what `status`, `watch` and the Web UI fetch is this view of it. At 10,000 computes in 201
// batches the whole state was 393 KiB (462 steps with summaries, 100 failed-node records),
// past the 256 KiB goal for any payload, and `watch` fetches it every 2 s. Pure: the workflow's
// query handler calls it, bench/fleet-plan.ts sizes it.
import type { BatchStepGroup, FailedNodeRecord, Progress, StepState } from './messages';

/**
 * Characters kept of a batch step's title, summary, error or output tail, and of a failed node's
 * error: the texts that multiply with the fleet. One line of a wide terminal, a backup path fits.
 */
export const TEXT_CHARS = 240;
/** The other steps (a fixed number, whatever the fleet) keep more: an operator reads them whole. */
export const STEP_TEXT_CHARS = 2_000;
/** Past this many batch steps, they are counted by phase and kind, and only a few listed. */
export const BATCH_STEPS_LISTED = 24;
/** Failed nodes listed (those waiting for the operator first); the rest are counted. */
export const FAILED_NODES_LISTED = 50;
/** Batch aggregates listed: every running or held one, and the last done ones (the ETA's). */
export const DONE_BATCHES_LISTED = 20;
/** The newest warnings (a warning per batch started past the budget could grow with the fleet). */
export const WARNINGS_LISTED = 50;

export const isBatchStepId = (id: string) => /^(compute-batch|hup-computes):\d+$/.test(id);

function cut(s: string, chars?: number): string;
function cut(s: string | undefined, chars?: number): string | undefined;
function cut(s: string | undefined, chars = TEXT_CHARS): string | undefined {
  if (s === undefined || s.length <= chars) return s;
  const kept = [...s];
  return kept.length <= chars ? s : `${kept.slice(0, chars - 1).join('')}…`;
}

function cutStep(s: StepState): StepState {
  const chars = isBatchStepId(s.id) ? TEXT_CHARS : STEP_TEXT_CHARS;
  const out: StepState = { ...s, title: cut(s.title, chars) };
  for (const k of ['summary', 'error', 'skipReason', 'outputTail'] as const)
    if (s[k] !== undefined) out[k] = cut(s[k], chars);
  return out;
}

/**
 * An abort's record of the steps that took effect, one line each, bounded whatever the fleet:
 * past BATCH_STEPS_LISTED succeeded batch steps, the newest are listed (where the cloud stands)
 * and the earlier ones counted by kind in one line where they would have been. Listed in full,
 * an abort late in a 10,000-compute run carried ~400 batch steps with their summaries.
 */
export function succeededSteps(steps: StepState[]): string[] {
  const ok = steps.filter((s) => s.status === 'succeeded');
  const batch = ok.filter((s) => isBatchStepId(s.id));
  const listed = new Set(batch.slice(-BATCH_STEPS_LISTED));
  const omitted = batch.filter((s) => !listed.has(s));
  const counts = new Map<string, number>();
  for (const s of omitted) counts.set(s.id.split(':')[0]!, (counts.get(s.id.split(':')[0]!) ?? 0) + 1);
  const lines: string[] = [];
  for (const s of ok) {
    if (isBatchStepId(s.id) && !listed.has(s)) {
      if (s === omitted[0])
        lines.push(
          `and ${omitted.length} earlier batch steps succeeded (${[...counts].map(([k, n]) => `${k} ${n}`).join(', ')}); each batch's detail is in its child workflow`,
        );
      continue;
    }
    lines.push(`${s.id}: ${cut(s.summary ?? 'done', isBatchStepId(s.id) ? TEXT_CHARS : STEP_TEXT_CHARS)}`);
  }
  return lines;
}

const OPEN_FIRST: Record<FailedNodeRecord['status'], number> = { held: 0, retrying: 1, skipped: 2, done: 3 };

/** The progress as the query answers it: everything but the fleet-sized lists, which are cut and counted. */
export function progressAnswer(p: Progress): Progress {
  const out: Progress = { ...p };
  // Batch steps: the first of each phase and kind (where the aggregate line goes), and every
  // one running, held or failed; the others counted.
  const batch = p.steps.filter((s) => isBatchStepId(s.id));
  let steps = p.steps;
  if (batch.length > BATCH_STEPS_LISTED) {
    const groups = new Map<string, BatchStepGroup>();
    for (const s of batch) {
      const kind = s.id.split(':')[0]!;
      const key = `${s.phase}/${kind}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { phase: s.phase, kind, total: 0, byStatus: {} }));
      g.total += 1;
      g.byStatus[s.status] = (g.byStatus[s.status] ?? 0) + 1;
    }
    out.batchSteps = [...groups.values()];
    const firsts = new Set<string>();
    steps = p.steps.filter((s) => {
      if (!isBatchStepId(s.id)) return true;
      const key = `${s.phase}/${s.id.split(':')[0]}`;
      const first = !firsts.has(key);
      firsts.add(key);
      return first || s.status === 'running' || s.status === 'held' || s.status === 'failed';
    });
  }
  out.steps = steps.map(cutStep);
  const c = p.compute;
  const failed = c.failedNodes ?? [];
  const batches = c.batches ?? [];
  const done = batches.filter((b) => b.status === 'done');
  const keepDone = new Set(done.slice(-DONE_BATCHES_LISTED));
  const listedBatches = batches.filter((b) => b.status !== 'done' || keepDone.has(b));
  out.compute = {
    ...c,
    ...(c.batches ? { batches: listedBatches } : {}),
    ...(c.batches && listedBatches.length < batches.length
      ? { batchesOmitted: batches.length - listedBatches.length }
      : {}),
    ...(c.failedNodes
      ? {
          failedNodes: [...failed]
            .sort((a, b) => OPEN_FIRST[a.status] - OPEN_FIRST[b.status] || a.batch - b.batch)
            .slice(0, FAILED_NODES_LISTED)
            .map((f) => ({
              ...f,
              error: cut(f.error)!,
              stage: cut(f.stage)!,
              ...(f.reason ? { reason: cut(f.reason) } : {}),
            })),
          failedNodeCounts: {
            held: failed.filter((f) => f.status === 'held').length,
            retrying: failed.filter((f) => f.status === 'retrying').length,
            skipped: failed.filter((f) => f.status === 'skipped').length,
            done: failed.filter((f) => f.status === 'done').length,
          },
        }
      : {}),
  };
  out.warnings = p.warnings.slice(-WARNINGS_LISTED).map((w) => cut(w, STEP_TEXT_CHARS));
  out.bounded = {
    textChars: TEXT_CHARS,
    stepsOmitted: p.steps.length - steps.length,
    failedNodesOmitted: Math.max(0, failed.length - FAILED_NODES_LISTED),
    warningsOmitted: Math.max(0, p.warnings.length - WARNINGS_LISTED),
    detail: `each batch's per-node detail is in its child workflow (${p.workflowId}/compute-batch-<n>/…); every remote command in \`nova-upgrade history ${p.workflowId}\`; the whole history in the Web UI`,
  };
  return out;
}
