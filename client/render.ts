// Text views of an upgrade's progress for `status` and `watch`.
import { PHASES, type FailedNodeRecord, type Progress, type StepState } from '../common/messages';
import type { LiveActivity } from './live';

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
  const parts = [
    s.alreadyDone ? 'already done' : '',
    s.summary ?? '',
    s.operatorRetries ? `${s.operatorRetries} operator retr${s.operatorRetries === 1 ? 'y' : 'ies'}` : '',
  ];
  return parts.filter(Boolean).join(' — ');
}

/** Cuts a line to the terminal's width, so a long summary (a backup path) never wraps. */
export function fit(line: string, width: number | undefined): string {
  if (!width || width < 20 || [...line].length <= width) return line;
  return `${[...line].slice(0, width - 1).join('')}…`;
}

const isBatchStep = (s: StepState) => /^(compute-batch|hup-computes):\d+$/.test(s.id);

/** Failed nodes named per status in `watch` and `status`; `status --json` lists more (and says where all are). */
const NAMED_PER_STATUS = 10;

/** The compute batches as aggregates: done, running, held, failed nodes, and an ETA from measured batches. */
export function batchSummary(p: Progress, nowMs = Date.now()): string[] {
  const c = p.compute;
  if (!c.batchesTotal) return [];
  const aggs = c.batches ?? [];
  const running = aggs.filter((a) => a.status === 'running').map((a) => a.index);
  const held = aggs.filter((a) => a.status === 'held').map((a) => a.index);
  const ended = aggs.filter((a) => a.status === 'done' && a.startedAt && a.endedAt);
  const parts = [`${c.batchesDone}/${c.batchesTotal} batches done`, `${c.nodesDone}/${c.nodesTotal} nodes`];
  if (running.length) parts.push(`running: batch ${running.join(', ')}`);
  if (held.length) parts.push(`held: batch ${held.join(', ')}`);
  const failed = c.failedNodes ?? [];
  // A bounded answer lists some failed nodes and counts all of them.
  const counts = c.failedNodeCounts;
  const count = (status: FailedNodeRecord['status']) =>
    counts ? counts[status] : failed.filter((f) => f.status === status).length;
  const open = count('held') + count('retrying') + count('skipped');
  if (open) parts.push(`${open} failed node${open === 1 ? '' : 's'}`);
  if (ended.length && c.batchesDone < c.batchesTotal) {
    const mean = ended.reduce((n, a) => n + (Date.parse(a.endedAt!) - Date.parse(a.startedAt!)), 0) / ended.length;
    const current = aggs.find((a) => a.status === 'running' && a.startedAt);
    const left = (c.batchesTotal - c.batchesDone) * mean - (current ? nowMs - Date.parse(current.startedAt!) : 0);
    parts.push(`ETA ${Math.max(1, Math.round(Math.max(0, left) / 60_000))} min`);
  }
  const lines = [`computes: ${parts.join(', ')}`];
  // Failed nodes by name, grouped by what became of them: the one thing at fleet size to read.
  for (const status of ['held', 'retrying', 'skipped'] as const) {
    // The count first and at most NAMED_PER_STATUS names, so a line cut to the width keeps both.
    const list = failed.filter((f) => f.status === status).slice(0, NAMED_PER_STATUS);
    const all = count(status);
    const more = all - list.length;
    if (all)
      lines.push(
        `  ${status}${more > 0 ? ` (${all})` : ''}: ${[
          ...list.map((f) => `${f.host} (batch ${f.batch}${status === 'skipped' ? `, ${f.stage}` : ''})`),
          ...(more > 0 ? [`and ${more} more (status --json)`] : []),
        ].join(', ')}`,
      );
  }
  return lines;
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
    out.push(
      `Held at ${p.pendingDecision.stepId}: ${p.pendingDecision.error}`,
      'Choose one:',
      ...p.pendingDecision.commands.map((c) => `  ${c}`),
    );
  }
  if (p.drain)
    out.push(
      `Draining ${p.drain.server}: ${Object.entries(p.drain.sessions)
        .map(([lb, n]) => `${lb} ${n} sessions`)
        .join(', ')}`,
    );
  return out;
}

/**
 * The steps, one line each (cut to `width` when given). Past `collapseAt` compute batches, the
 * batch steps of a phase show as one aggregate line, plus any batch running, held or failed.
 */
export function progressTable(
  p: Progress,
  opts: { onlyPhase?: boolean; width?: number; collapseAt?: number } = {},
): string {
  const lines = [headline(p), ''];
  const all = opts.onlyPhase && p.phase ? p.steps.filter((s) => s.phase === p.phase) : p.steps;
  const batchSteps = all.filter(isBatchStep);
  const collapse = !!p.batchSteps || batchSteps.length > (opts.collapseAt ?? 12);
  let phase = '';
  const collapsed = new Set<string>();
  const header = (ph: string) => {
    if (ph === phase) return;
    phase = ph;
    const approval = p.approvals.find((a) => a.phase === phase);
    lines.push(
      `${phase}${approval ? `  (approved by ${approval.approver}${approval.auto ? ', automatically' : ''}${approval.comment ? `: ${approval.comment}` : ''})` : ''}`,
    );
  };
  for (const s of all) {
    if (collapse && isBatchStep(s)) {
      // One aggregate line where a phase's batch steps of a kind begin; then only those running,
      // held or failed, each on its own line.
      const kind = s.id.split(':')[0]!;
      if (!collapsed.has(`${s.phase}/${kind}`)) {
        collapsed.add(`${s.phase}/${kind}`);
        const same = batchSteps.filter((x) => x.phase === s.phase && x.id.startsWith(`${kind}:`));
        // A bounded answer lists a few batch steps and counts them all.
        const group = p.batchSteps?.find((g) => g.phase === s.phase && g.kind === kind);
        const total = group?.total ?? same.length;
        const count = (st: StepState['status']) =>
          group ? (group.byStatus[st] ?? 0) : same.filter((x) => x.status === st).length;
        const title = kind === 'compute-batch' ? 'upgrade nova-compute batches' : 'SIGHUP nova-compute batches';
        header(s.phase);
        lines.push(
          fit(
            `  ${count('succeeded') === total ? MARK.succeeded : MARK.pending} ${pad(title, 58)} ${pad(`${count('succeeded')}/${total}`, 10)} ${[count('running') && `${count('running')} running`, count('held') && `${count('held')} held`, count('failed') && `${count('failed')} failed`, count('skipped') && `${count('skipped')} skipped`].filter(Boolean).join(', ')}`.trimEnd(),
            opts.width,
          ),
        );
      }
      if (!['running', 'held', 'failed'].includes(s.status)) continue;
    }
    header(s.phase);
    lines.push(
      fit(`  ${MARK[s.status]} ${pad(s.title, 58)} ${pad(s.status, 10)} ${stepNote(s)}`.trimEnd(), opts.width),
    );
  }
  const batches = batchSummary(p);
  if (batches.length && (p.compute.batches?.length || p.compute.failedNodes?.length))
    lines.push('', ...batches.map((l) => fit(l, opts.width)));
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
    if (b?.status !== s.status && !(b === undefined && s.status === 'pending'))
      out.push(`${MARK[s.status]} ${s.title}: ${s.status}${stepNote(s) ? ` — ${stepNote(s)}` : ''}`);
  }
  // A bounded answer counts the batch steps it does not list: a line when a count moves.
  for (const g of cur.batchSteps ?? []) {
    const was = prev?.batchSteps?.find((x) => x.phase === g.phase && x.kind === g.kind);
    const done = g.byStatus.succeeded ?? 0;
    if (was && (was.byStatus.succeeded ?? 0) !== done)
      out.push(
        `${done === g.total ? MARK.succeeded : MARK.running} ${g.kind === 'compute-batch' ? 'upgrade nova-compute batches' : 'SIGHUP nova-compute batches'}: ${done}/${g.total} succeeded`,
      );
  }
  if (cur.pendingApproval && !prev?.pendingApproval) out.push(...nextAction(cur));
  if (cur.pendingDecision && !prev?.pendingDecision) out.push(...nextAction(cur));
  return out;
}

/** ✓ done, ▶ running, ? waiting for approval, ! held, · not started. */
export function phaseLine(p: Progress): string {
  const current = p.phase ? PHASES.indexOf(p.phase) : -1;
  const mark = (i: number) => {
    if (p.status === 'completed' || i < current) return '✓';
    if (i > current) return '·';
    return p.status === 'waiting-approval' ? '?' : p.status === 'held' ? '!' : '▶';
  };
  return `phases: ${PHASES.map((ph, i) => `${mark(i)} ${ph}`).join('   ')}`;
}

export function computeLine(p: Progress): string | undefined {
  const c = p.compute;
  if (!c.batchesTotal) return undefined;
  // Since parallel-compute-batch the progress carries aggregates per batch.
  if (c.batches) return batchSummary(p)[0];
  const running = p.currentStep?.startsWith('compute-batch:') ? p.steps.find((s) => s.id === p.currentStep) : undefined;
  const now =
    running && (running.status === 'running' || running.status === 'held')
      ? `; batch ${running.id.split(':')[1]}/${c.batchesTotal} ${running.status}`
      : '';
  return `computes: ${c.nodesDone}/${c.nodesTotal} nodes, ${c.batchesDone}/${c.batchesTotal} batches done${now}`;
}

function ms(n: number): string {
  return n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(1)} s`;
}

type Shape<T> = (d: unknown) => d is T;
const has = <K extends string>(d: unknown, ...keys: K[]): d is Record<K, unknown> =>
  typeof d === 'object' && d !== null && keys.every((k) => k in d);

interface Sessions {
  counts: { lb: string; scur: number; qcur: number }[];
  zeroForMs: number;
}
interface Probe {
  requests: number;
  failedRequests: number;
  versionDecreases: number;
  latencyMs?: { p99: number };
  failuresByKind?: Record<string, number>;
}
const isSessions: Shape<Sessions> = (d): d is Sessions => has(d, 'counts', 'zeroForMs') && Array.isArray(d.counts);
const isProbe: Shape<Probe> = (d): d is Probe => has(d, 'requests', 'failedRequests', 'versionDecreases');

export interface LiveLine {
  text: string;
  /** What must change for the plain (non-TTY) mode to print the line again. */
  key: string;
}

/** One line per running activity, from its last heartbeat; the workflow itself cannot see these. */
export function liveLines(live: LiveActivity[]): LiveLine[] {
  const out: LiveLine[] = [];
  for (const a of live) {
    const d = a.details;
    const retry =
      a.attempt > 1 ? ` (attempt ${a.attempt}${a.lastFailure ? `, last: ${a.lastFailure.split('\n')[0]}` : ''})` : '';
    let text: string;
    let key: string;
    if (isSessions(d)) {
      const counts = d.counts.map((c) => `${c.lb} ${c.scur}${c.qcur ? ` (+${c.qcur} queued)` : ''}`).join(', ');
      text = `sessions on the drained server: ${counts}${d.zeroForMs ? `; none for ${ms(d.zeroForMs)}` : ''}`;
      key = `sessions ${counts}`;
    } else if (isProbe(d)) {
      const kinds = Object.entries(d.failuresByKind ?? {})
        .map(([k, n]) => `${k} ${n}`)
        .join(', ');
      text = `probe through the VIP: ${d.requests} requests, ${d.failedRequests} failed${kinds ? ` (${kinds})` : ''}, ${d.versionDecreases} version decreases${d.latencyMs ? `, p99 ${d.latencyMs.p99} ms` : ''}`;
      // The request count moves every second; only failures and version decreases are news.
      key = `probe ${d.failedRequests} ${d.versionDecreases}`;
    } else if (has(d, 'passedSoFar') && typeof d.passedSoFar === 'number') {
      text = `tempest: ${d.passedSoFar} tests passed so far`;
      key = `tempest ${Math.floor(d.passedSoFar / 10)}`;
    } else if (has(d, 'statuses') && typeof d.statuses === 'object' && d.statuses) {
      text = `waiting for UP: ${Object.entries(d.statuses as Record<string, string>)
        .map(([lb, st]) => `${lb} ${st}`)
        .join(', ')}`;
      key = text;
    } else if (has(d, 'waiting') && Array.isArray(d.waiting)) {
      text = `waiting for computes: ${d.waiting.join('; ')}`;
      key = text;
    } else if (has(d, 'inProgress') && Array.isArray(d.inProgress)) {
      text = `instance tasks in progress: ${d.inProgress.join(', ')}`;
      key = text;
    } else if (has(d, 'tail') && typeof d.tail === 'string' && d.tail.trim()) {
      text = `${a.activity}: ${d.tail.trim().split('\n').pop()}`;
      key = a.activity;
    } else {
      text = `${a.activity}: running`;
      key = a.activity;
    }
    out.push({ text: `${text}${retry}`, key: `${a.workflowId} ${a.activity} ${key}${retry ? ` ${a.attempt}` : ''}` });
  }
  return out;
}

/** The TTY view: where the upgrade stands, what runs right now, and the current phase's steps. */
export function watchView(p: Progress, live: LiveActivity[], width?: number): string {
  const lines = [headline(p), phaseLine(p)];
  const compute = computeLine(p);
  if (compute) lines.push(compute);
  const now = liveLines(live);
  // At fleet size dozens of activities run at once: the first few, and how many more.
  const shown = now.slice(0, 8).map((l) => `  ${l.text}`);
  if (now.length > shown.length) shown.push(`  … and ${now.length - shown.length} more`);
  if (now.length) lines.push('', 'Now:', ...shown);
  lines.push('', progressTable(p, { onlyPhase: true, width }).split('\n').slice(2).join('\n'));
  return lines.map((l) => fit(l, width)).join('\n');
}
