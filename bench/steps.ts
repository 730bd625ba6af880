// bench/steps.ts: where an upgrade's wall time goes, read from its event history (the parent's
// and every child's). It walks the chain of events that the workflow's result waited on, back to
// its start: each activity the chain passes through was scheduled by a workflow task, which was
// scheduled by the event that woke the workflow (an activity's or child's completion, a timer).
// Every millisecond of the wall lies on exactly one link of this chain, so the links add up to
// the wall, and each is one kind of cost:
//
//   wake→wft     the server's latency from the waking event to the workflow task's schedule
//   wft queue    workflow task scheduled → started (the worker's poll, sticky or not)
//   wft run      workflow task started → completed (the workflow's code, plus the round trip)
//   act queue    activity scheduled → started (the worker's activity poll)
//   remote       the activity's remote commands, by their own durations on the node
//   act local    the rest of the activity: SSH connect, reading results, heartbeats, retries' backoff
//   beside       an activity that ran beside the steps (the VIP probe, tempest beside the API
//                restarts), for what it took beyond the last completion it overlapped
//   child start  child initiated → child started (its first workflow task is counted as above)
//   child end    the child's completion → the parent's record of it
//   timer        a workflow timer
//
//   npx tsx bench/steps.ts --address 127.0.0.1:7395 --workflow <id>      # an upgrade that ran
//   npx tsx bench/steps.ts --run --subnet 127.0.95 --port 7395 --state-dir /tmp/s4speed
//                                                    # a fresh lab demo upgrade, then its breakdown
//   … --save run.hist.json        keeps the histories (parent and children) for later
//   npx tsx bench/steps.ts --from run.hist.json     # the breakdown again, without a server
//   npx tsx bench/steps.ts --compare before.hist.json --compare after.hist.json   # side by side
//
// The second form runs the README's demo path (runLabDemo: a fresh default two-node lab, every
// gate approved automatically, the harness's VIP probe) on the subnet and ports given, and leaves
// its dev server and worker running (`nova-upgrade lab stop-all --state-dir <dir>` stops them).
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { connectClient, resolveConnection } from '../client/connection';
import { runLabDemo } from '../client/labDemo';
import { decodePayload } from '../client/payloads';
import { defaultPayloadConverter } from '@temporalio/common';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const T = temporal.api.enums.v1.EventType;

const { values } = parseArgs({
  options: {
    address: { type: 'string' },
    namespace: { type: 'string', default: 'default' },
    workflow: { type: 'string' },
    run: { type: 'boolean', default: false },
    subnet: { type: 'string', default: '127.0.95' },
    port: { type: 'string', default: '7395' },
    'ui-port': { type: 'string' },
    'state-dir': { type: 'string', default: '/tmp/nu-bench-steps' },
    mode: { type: 'string', default: 'monotonic' },
    json: { type: 'string' },
    save: { type: 'string' },
    from: { type: 'string' },
    compare: { type: 'string', multiple: true },
  },
});

const ms = (e: HistoryEvent | undefined): number => {
  const t = e?.eventTime;
  return t ? Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : NaN;
};
const id = (x: unknown): number => Number(x ?? 0);

export interface Link {
  kind:
    | 'wake→wft'
    | 'wft queue'
    | 'wft run'
    | 'act queue'
    | 'remote'
    | 'act local'
    | 'beside'
    | 'child start'
    | 'child end'
    | 'timer';
  ms: number;
  /** The activity, child or timer the link belongs to, as the Web UI names it. */
  what: string;
  workflowId: string;
}

export interface ActivityRow {
  workflowId: string;
  what: string;
  /** From the event that woke the workflow to this activity's schedule (workflow task latency). */
  gapMs: number;
  queueMs: number;
  runMs: number;
  remoteMs: number;
  scheduledAt: number;
  onChain: boolean;
}

interface History {
  workflowId: string;
  events: HistoryEvent[];
  byId: Map<number, HistoryEvent>;
}

/** Where the histories come from: the server, or a file an earlier run saved (`--save`, `--from`). */
export interface Source {
  history(workflowId: string, runId?: string): Promise<HistoryEvent[]>;
  decode(p: Payload | null | undefined): Promise<unknown>;
}

type Payload = temporal.api.common.v1.IPayload;

/** From the server; every history it fetches is kept in `saved` (base64 of the History proto). */
export function serverSource(client: Client, saved: Record<string, string> = {}): Source {
  return {
    history: async (workflowId, runId) => {
      const h = await client.workflow.getHandle(workflowId, runId).fetchHistory();
      saved[workflowId] = Buffer.from(temporal.api.history.v1.History.encode(h).finish()).toString('base64');
      return h.events ?? [];
    },
    decode: (p) => decodePayload(client, p),
  };
}

/** From a file written by `--save`: the default data converter (the lab uses no codec). */
export function fileSource(saved: Record<string, string>): Source {
  return {
    history: async (workflowId) => {
      const b = saved[workflowId];
      if (!b) throw new Error(`no saved history for ${workflowId}`);
      return temporal.api.history.v1.History.decode(Buffer.from(b, 'base64')).events ?? [];
    },
    decode: async (p) => (p ? defaultPayloadConverter.fromPayload(p) : undefined),
  };
}

async function load(client: Source, workflowId: string, runId?: string): Promise<History> {
  const events = await client.history(workflowId, runId);
  return { workflowId, events, byId: new Map(events.map((e) => [id(e.eventId), e])) };
}

async function activityName(client: Source, s: HistoryEvent): Promise<string> {
  const summary = await client.decode(s.userMetadata?.summary);
  const type = s.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
  return typeof summary === 'string' && summary ? `${type}: ${summary}` : type;
}

async function remoteOf(client: Source, completed: HistoryEvent): Promise<number> {
  const r = (await client.decode(completed.activityTaskCompletedEventAttributes?.result?.payloads?.[0])) as
    { commands?: { durationMs?: unknown }[] } | undefined;
  return Array.isArray(r?.commands)
    ? r.commands.reduce((n, c) => n + (typeof c.durationMs === 'number' ? c.durationMs : 0), 0)
    : 0;
}

const isWft = (e: HistoryEvent) =>
  e.eventType === T.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED ||
  e.eventType === T.EVENT_TYPE_WORKFLOW_TASK_STARTED ||
  e.eventType === T.EVENT_TYPE_WORKFLOW_TASK_COMPLETED ||
  e.eventType === T.EVENT_TYPE_WORKFLOW_TASK_FAILED ||
  e.eventType === T.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT;

/** The event that woke the workflow for this workflow task: the newest other event before it. */
function wakeOf(h: History, wfts: HistoryEvent): HistoryEvent {
  for (let i = id(wfts.eventId) - 1; i >= 1; i--) {
    const e = h.byId.get(i)!;
    if (
      !isWft(e) &&
      e.eventType !== T.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES &&
      e.eventType !== T.EVENT_TYPE_MARKER_RECORDED
    )
      return e;
    if (e.eventType === T.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) {
      // Scheduled right after another task completed (a forced new task): that task's own wake.
      const prevS = h.byId.get(id(e.workflowTaskCompletedEventAttributes?.scheduledEventId))!;
      return wakeOf(h, prevS);
    }
  }
  return h.byId.get(1)!;
}

/** The links from the workflow task completed at `wftc` back to the wake that caused it. */
function wftLinks(h: History, wftc: HistoryEvent, what: string, out: Link[]): HistoryEvent {
  const a = wftc.workflowTaskCompletedEventAttributes;
  const s = h.byId.get(id(a?.scheduledEventId))!;
  const st = h.byId.get(id(a?.startedEventId))!;
  const wake = wakeOf(h, s);
  const w = h.workflowId;
  out.push({ kind: 'wft run', ms: ms(wftc) - ms(st), what, workflowId: w });
  out.push({ kind: 'wft queue', ms: ms(st) - ms(s), what, workflowId: w });
  out.push({ kind: 'wake→wft', ms: ms(s) - ms(wake), what, workflowId: w });
  return wake;
}

const isCompletion = (e: HistoryEvent) =>
  e.eventType === T.EVENT_TYPE_ACTIVITY_TASK_COMPLETED ||
  e.eventType === T.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED ||
  e.eventType === T.EVENT_TYPE_TIMER_FIRED;

/** The workflow task that scheduled what `e` completes (an activity, a child, a timer). */
function originTask(h: History, e: HistoryEvent): number {
  if (e.eventType === T.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
    const sch = h.byId.get(id(e.activityTaskCompletedEventAttributes?.scheduledEventId));
    return id(sch?.activityTaskScheduledEventAttributes?.workflowTaskCompletedEventId);
  }
  if (e.eventType === T.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED) {
    const init = h.byId.get(id(e.childWorkflowExecutionCompletedEventAttributes?.initiatedEventId));
    return id(init?.startChildWorkflowExecutionInitiatedEventAttributes?.workflowTaskCompletedEventId);
  }
  const st = h.byId.get(id(e.timerFiredEventAttributes?.startedEventId));
  return id(st?.timerStartedEventAttributes?.workflowTaskCompletedEventId);
}

/**
 * Walks back from `end` (the workflow's completion) to its start, pushing every link, newest
 * first. Children are walked the same way inside. An activity that ran beside others (the VIP
 * probe, tempest beside the API restarts) is on the chain only for what it took beyond the last
 * other completion it overlapped: the workflow was waiting for that one until then.
 */
async function chain(client: Source, h: History, end: HistoryEvent, out: Link[], onChain: Set<string>): Promise<void> {
  const wftc0 = h.byId.get(id(end.workflowExecutionCompletedEventAttributes?.workflowTaskCompletedEventId))!;
  let wake = wftLinks(h, wftc0, 'workflow task', out);
  for (;;) {
    let next: HistoryEvent;
    switch (wake.eventType) {
      case T.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        return;
      case T.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: {
        const a = wake.activityTaskCompletedEventAttributes;
        const sch = h.byId.get(id(a?.scheduledEventId))!;
        const st = h.byId.get(id(a?.startedEventId))!;
        const what = await activityName(client, sch);
        // Only what the workflow scheduled after this activity: a sibling scheduled by the same
        // task (reads at once) is not beside it, the slower of the two is simply the chain.
        const mine = id(sch.activityTaskScheduledEventAttributes?.workflowTaskCompletedEventId);
        const overlapped = h.events
          .filter(
            (e) =>
              e !== wake &&
              isCompletion(e) &&
              id(e.eventId) < id(wake.eventId) &&
              ms(e) > ms(st) &&
              originTask(h, e) > mine,
          )
          .at(-1);
        if (overlapped) {
          out.push({ kind: 'beside', ms: ms(wake) - ms(overlapped), what, workflowId: h.workflowId });
          wake = overlapped;
          continue;
        }
        onChain.add(`${h.workflowId}/${id(sch.eventId)}`);
        const remote = await remoteOf(client, wake);
        const run = ms(wake) - ms(st);
        out.push({ kind: 'remote', ms: Math.min(remote, run), what, workflowId: h.workflowId });
        out.push({ kind: 'act local', ms: run - Math.min(remote, run), what, workflowId: h.workflowId });
        out.push({ kind: 'act queue', ms: ms(st) - ms(sch), what, workflowId: h.workflowId });
        next = h.byId.get(id(sch.activityTaskScheduledEventAttributes?.workflowTaskCompletedEventId))!;
        break;
      }
      case T.EVENT_TYPE_TIMER_FIRED: {
        const st = h.byId.get(id(wake.timerFiredEventAttributes?.startedEventId))!;
        out.push({ kind: 'timer', ms: ms(wake) - ms(st), what: 'timer', workflowId: h.workflowId });
        next = h.byId.get(id(st.timerStartedEventAttributes?.workflowTaskCompletedEventId))!;
        break;
      }
      case T.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: {
        const a = wake.childWorkflowExecutionCompletedEventAttributes;
        const init = h.byId.get(id(a?.initiatedEventId))!;
        const x = a?.workflowExecution;
        const child = await load(client, x!.workflowId!, x!.runId ?? undefined);
        const cEnd = child.events.find((e) => e.eventType === T.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)!;
        const what = `child ${child.workflowId}`;
        out.push({ kind: 'child end', ms: ms(wake) - ms(cEnd), what, workflowId: h.workflowId });
        await chain(client, child, cEnd, out, onChain);
        out.push({ kind: 'child start', ms: ms(child.events[0]) - ms(init), what, workflowId: h.workflowId });
        next = h.byId.get(id(init.startChildWorkflowExecutionInitiatedEventAttributes?.workflowTaskCompletedEventId))!;
        break;
      }
      default:
        // A signal or an update: the chain cannot follow it further; the rest is one gap.
        out.push({
          kind: 'wake→wft',
          ms: ms(wake) - ms(h.events[0]),
          what: `until ${T[wake.eventType!] ?? wake.eventType}`,
          workflowId: h.workflowId,
        });
        return;
    }
    wake = wftLinks(h, next, 'workflow task', out);
  }
}

/** Every activity of the workflow and its children, in schedule order, with its costs. */
async function activities(client: Source, h: History, onChain: Set<string>, out: ActivityRow[]): Promise<void> {
  for (const e of h.events) {
    if (e.eventType === T.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
      const a = e.activityTaskCompletedEventAttributes;
      const sch = h.byId.get(id(a?.scheduledEventId))!;
      const st = h.byId.get(id(a?.startedEventId))!;
      const wftc = h.byId.get(id(sch.activityTaskScheduledEventAttributes?.workflowTaskCompletedEventId))!;
      const wfts = h.byId.get(id(wftc.workflowTaskCompletedEventAttributes?.scheduledEventId))!;
      out.push({
        workflowId: h.workflowId,
        what: await activityName(client, sch),
        gapMs: ms(sch) - ms(wakeOf(h, wfts)),
        queueMs: ms(st) - ms(sch),
        runMs: ms(e) - ms(st),
        remoteMs: await remoteOf(client, e),
        scheduledAt: ms(sch),
        onChain: onChain.has(`${h.workflowId}/${id(sch.eventId)}`),
      });
    } else if (e.eventType === T.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED) {
      const x = e.childWorkflowExecutionCompletedEventAttributes?.workflowExecution;
      await activities(client, await load(client, x!.workflowId!, x!.runId ?? undefined), onChain, out);
    }
  }
}

export interface Breakdown {
  workflowId: string;
  wallMs: number;
  events: number;
  links: Link[];
  rows: ActivityRow[];
}

export async function breakdown(client: Source, workflowId: string): Promise<Breakdown> {
  const h = await load(client, workflowId);
  const end = h.events.find((e) => e.eventType === T.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
  if (!end) throw new Error(`${workflowId} has not completed`);
  const links: Link[] = [];
  const onChain = new Set<string>();
  await chain(client, h, end, links, onChain);
  links.reverse();
  const rows: ActivityRow[] = [];
  await activities(client, h, onChain, rows);
  rows.sort((a, b) => a.scheduledAt - b.scheduledAt);
  return { workflowId, wallMs: ms(end) - ms(h.events[0]), events: h.events.length, links, rows };
}

const s = (n: number) => (n / 1000).toFixed(2);

export function render(b: Breakdown): string {
  const lines: string[] = [];
  const t0 = b.rows[0]?.scheduledAt ?? 0;
  lines.push(`${b.workflowId}: wall ${s(b.wallMs)} s (workflow start to completion), ${b.events} parent events`, '');
  lines.push(
    '| t (s) | activity (* on the critical chain) | wake→schedule | schedule→start | start→complete | remote |',
  );
  lines.push('|---|---|---|---|---|---|');
  for (const r of b.rows) {
    const child = r.workflowId === b.workflowId ? '' : ` [${r.workflowId.slice(b.workflowId.length + 1)}]`;
    lines.push(
      `| ${s(r.scheduledAt - t0)} | ${r.onChain ? '* ' : ''}${r.what.slice(0, 90)}${child} | ${s(r.gapMs)} | ${s(r.queueMs)} | ${s(r.runMs)} | ${s(r.remoteMs)} |`,
    );
  }
  const byKind = new Map<string, number>();
  for (const l of b.links) byKind.set(l.kind, (byKind.get(l.kind) ?? 0) + l.ms);
  const total = b.links.reduce((n, l) => n + l.ms, 0);
  lines.push(
    '',
    `The chain the result waited on: ${b.links.length} links, ${s(total)} s (the wall is ${s(b.wallMs)} s)`,
    '',
  );
  lines.push('| link | total (s) | share |', '|---|---|---|');
  for (const [k, v] of [...byKind].sort((x, y) => y[1] - x[1]))
    lines.push(`| ${k} | ${s(v)} | ${((100 * v) / total).toFixed(1)} % |`);
  const chainActs = b.rows.filter((r) => r.onChain).length;
  const wfts = b.links.filter((l) => l.kind === 'wft run').length;
  lines.push('', `${chainActs} activities and ${wfts} workflow tasks on the chain`);
  return lines.join('\n');
}

/**
 * Two runs side by side: per activity (matched by name and occurrence; a child's by its name
 * without the child), wake→schedule + schedule→start (the orchestration before it) and
 * start→complete, then the chain's totals by kind.
 */
export function compare(a: Breakdown, b: Breakdown, names: [string, string]): string {
  const key = (r: ActivityRow, seen: Map<string, number>) => {
    const k = r.what.slice(0, 70);
    const n = (seen.get(k) ?? 0) + 1;
    seen.set(k, n);
    return `${k}#${n}`;
  };
  const index = (x: Breakdown) => {
    const seen = new Map<string, number>();
    return new Map(x.rows.map((r) => [key(r, seen), r]));
  };
  const ia = index(a);
  const ib = index(b);
  const keys = [...new Set([...ia.keys(), ...ib.keys()])];
  const cell = (r?: ActivityRow) => (r ? `${s(r.gapMs + r.queueMs)} | ${s(r.runMs)} | ${s(r.remoteMs)}` : '– | – | –');
  const lines = [
    `before: ${names[0]} (wall ${s(a.wallMs)} s); after: ${names[1]} (wall ${s(b.wallMs)} s)`,
    '',
    '| activity | before: wake→start | start→complete | remote | after: wake→start | start→complete | remote |',
    '|---|---|---|---|---|---|---|',
    ...keys.map((k) => `| ${k.replace(/#1$/, '')} | ${cell(ia.get(k))} | ${cell(ib.get(k))} |`),
    '',
    '| link (the chain the result waited on) | before (s) | after (s) |',
    '|---|---|---|',
  ];
  const sum = (x: Breakdown, kind: string) => x.links.filter((l) => l.kind === kind).reduce((n, l) => n + l.ms, 0);
  const kinds = [...new Set([...a.links, ...b.links].map((l) => l.kind))];
  for (const k of kinds) lines.push(`| ${k} | ${s(sum(a, k))} | ${s(sum(b, k))} |`);
  const count = (x: Breakdown, kind: string) => x.links.filter((l) => l.kind === kind).length;
  lines.push(
    `| activities / workflow tasks on the chain | ${count(a, 'act queue')} / ${count(a, 'wft run')} | ${count(b, 'act queue')} / ${count(b, 'wft run')} |`,
  );
  return lines.join('\n');
}

async function main() {
  let address = values.address;
  let workflowId = values.workflow;
  if (values.run) {
    const port = Number(values.port);
    const sum = await runLabDemo({
      stateDir: values['state-dir']!,
      mode: values.mode === 'rolling' ? 'rolling' : 'monotonic',
      subnet: values.subnet!,
      port,
      uiPort: Number(values['ui-port'] ?? port + 1000),
      out: (l) => process.stderr.write(`${l}\n`),
    });
    process.stderr.write(
      `${sum.workflowId}: ${sum.status} in ${sum.upgradeSeconds} s; ${sum.requests} requests, ${sum.failedRequests} failed; retries/redispatches ${sum.haproxyRetries}/${sum.haproxyRedispatches}\n`,
    );
    address = `127.0.0.1:${port}`;
    workflowId = sum.workflowId;
  }
  const out = (b: Breakdown) => {
    process.stdout.write(`${render(b)}\n`);
    if (values.json) writeFileSync(values.json, JSON.stringify(b, null, 1));
  };
  if (values.compare?.length === 2) {
    const [a, b] = await Promise.all(
      values.compare.map(async (f) => {
        const file = JSON.parse(readFileSync(f, 'utf8')) as { workflowId: string; histories: Record<string, string> };
        return breakdown(fileSource(file.histories), file.workflowId);
      }),
    );
    process.stdout.write(`${compare(a!, b!, values.compare as [string, string])}\n`);
    return;
  }
  if (values.from) {
    const file = JSON.parse(readFileSync(values.from, 'utf8')) as {
      workflowId: string;
      histories: Record<string, string>;
    };
    return out(await breakdown(fileSource(file.histories), workflowId ?? file.workflowId));
  }
  if (!address || !workflowId) throw new Error('give --address and --workflow, --run, or --from <saved file>');
  const conn = resolveConnection({ address, namespace: values.namespace! });
  const client = await connectClient(conn);
  try {
    const histories: Record<string, string> = {};
    out(await breakdown(serverSource(client, histories), workflowId));
    if (values.save) writeFileSync(values.save, JSON.stringify({ workflowId, histories }));
  } finally {
    await client.connection.close();
  }
}

if (require.main === module)
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
