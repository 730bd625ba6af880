// Where one compute batch's wall went, from its child workflow's history: the batch-wide lines
// (disable, task check, reports up, enable) against the nodes' chains, and for each activity type
// how long its tasks waited for a worker slot (scheduled → started), how long they ran, and how
// much of that the node's own commands took. The workflow tasks' count, queue and run show what
// the child's own orchestration cost. bench/fleet.ts prints it for the largest batch.
import type { temporal } from '@temporalio/proto';
import { defaultPayloadConverter } from '@temporalio/common';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** A task that waited longer than this for a worker counts as waiting. */
const WAITED_MS = 100;

const at = (e: HistoryEvent | undefined): number => {
  const t = e?.eventTime;
  return t ? Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : Number.NaN;
};

export interface ActivityTypeRow {
  type: string;
  count: number;
  /** Scheduled → started, mean and max ms. */
  queueMeanMs: number;
  queueMaxMs: number;
  /** Started → completed (or failed), mean ms. */
  runMeanMs: number;
  /** The node's own command durations in the results, mean ms per activity. */
  remoteMeanMs: number;
  /** First scheduled → last completed, ms after the child's start. */
  firstMs: number;
  lastMs: number;
}

export interface BatchProfile {
  wallMs: number;
  events: number;
  workflowTasks: number;
  wftQueueSumMs: number;
  wftRunSumMs: number;
  activities: ActivityTypeRow[];
  /** The most activities of the batch started and not yet ended at one moment, and when (ms). */
  maxRunning: { count: number; atMs: number };
  /**
   * The most scheduled and not yet started at one moment, counting only tasks that waited over
   * WAITED_MS: an eager start is recorded a few ms after its schedule, and counting those made a
   * batch whose every task started at once read "128 waiting".
   */
  maxWaiting: { count: number; atMs: number };
}

function remoteMs(e: HistoryEvent): number {
  const p = e.activityTaskCompletedEventAttributes?.result?.payloads?.[0];
  if (!p) return 0;
  let r: unknown;
  try {
    r = defaultPayloadConverter.fromPayload(p);
  } catch {
    return 0;
  }
  const cmds = (r as { commands?: { durationMs?: unknown }[] } | undefined)?.commands;
  return Array.isArray(cmds) ? cmds.reduce((n, c) => n + (typeof c.durationMs === 'number' ? c.durationMs : 0), 0) : 0;
}

export function batchProfile(events: HistoryEvent[]): BatchProfile {
  const byId = new Map(events.map((e) => [Number(e.eventId ?? 0), e]));
  const t0 = at(events[0]);
  let workflowTasks = 0;
  let wftQueueSumMs = 0;
  let wftRunSumMs = 0;
  const spans: { s: number; st: number; end: number }[] = [];
  const rows = new Map<
    string,
    { n: number; q: number; qMax: number; run: number; remote: number; first: number; last: number }
  >();
  for (const e of events) {
    const c = e.workflowTaskCompletedEventAttributes;
    if (c) {
      const s = byId.get(Number(c.scheduledEventId ?? 0));
      const st = byId.get(Number(c.startedEventId ?? 0));
      workflowTasks++;
      wftQueueSumMs += at(st) - at(s);
      wftRunSumMs += at(e) - at(st);
    }
    const done = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes;
    if (done) {
      const s = byId.get(Number(done.scheduledEventId ?? 0));
      const st = byId.get(Number(done.startedEventId ?? 0));
      const type = s?.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
      const row = rows.get(type) ?? { n: 0, q: 0, qMax: 0, run: 0, remote: 0, first: Infinity, last: 0 };
      const q = at(st) - at(s);
      spans.push({ s: at(s) - t0, st: at(st) - t0, end: at(e) - t0 });
      row.n++;
      row.q += q;
      row.qMax = Math.max(row.qMax, q);
      row.run += at(e) - at(st);
      row.remote += remoteMs(e);
      row.first = Math.min(row.first, at(s) - t0);
      row.last = Math.max(row.last, at(e) - t0);
      rows.set(type, row);
    }
  }
  const activities = [...rows.entries()]
    .map(([type, r]) => ({
      type,
      count: r.n,
      queueMeanMs: r.q / r.n,
      queueMaxMs: r.qMax,
      runMeanMs: r.run / r.n,
      remoteMeanMs: r.remote / r.n,
      firstMs: r.first,
      lastMs: r.last,
    }))
    .sort((a, b) => a.firstMs - b.firstMs);
  const peak = (from: (x: (typeof spans)[number]) => number, to: (x: (typeof spans)[number]) => number) => {
    const edges = spans.flatMap((x) => [
      { t: from(x), d: 1 },
      { t: to(x), d: -1 },
    ]);
    edges.sort((a, b) => a.t - b.t || a.d - b.d);
    let n = 0;
    let best = { count: 0, atMs: 0 };
    for (const e of edges) {
      n += e.d;
      if (n > best.count) best = { count: n, atMs: e.t };
    }
    return best;
  };
  return {
    maxRunning: peak(
      (x) => x.st,
      (x) => x.end,
    ),
    maxWaiting: peak(
      (x) => x.s,
      (x) => (x.st - x.s > WAITED_MS ? x.st : x.s),
    ),
    wallMs: at(events.at(-1)) - t0,
    events: events.length,
    workflowTasks,
    wftQueueSumMs,
    wftRunSumMs,
    activities,
  };
}

export function renderBatchProfile(p: BatchProfile): string {
  const s = (n: number) => (n / 1000).toFixed(2);
  const lines = [
    `batch child: wall ${s(p.wallMs)} s, ${p.events} events, ${p.workflowTasks} workflow tasks (queue ${s(p.wftQueueSumMs)} s, run ${s(p.wftRunSumMs)} s summed); activities at once: at most ${p.maxRunning.count} running (at ${s(p.maxRunning.atMs)} s), ${p.maxWaiting.count} waiting over 0.1 s for a worker (at ${s(p.maxWaiting.atMs)} s)`,
    '| activity | count | from s | to s | queue mean / max s | run mean s | node commands mean s |',
    '|---|---|---|---|---|---|---|',
    ...p.activities.map(
      (a) =>
        `| ${a.type} | ${a.count} | ${s(a.firstMs)} | ${s(a.lastMs)} | ${s(a.queueMeanMs)} / ${s(a.queueMaxMs)} | ${s(a.runMeanMs)} | ${s(a.remoteMeanMs)} |`,
    ),
  ];
  return lines.join('\n');
}
