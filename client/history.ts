// `history ID`: the audit log of every remote command an upgrade ran, read back from the
// workflow's history (and its compute-batch children's), where every activity result keeps
// the commands it ran. Nothing here depends on a worker: history is the server's record.
import { isGrpcServiceError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { CommandRecord } from '../activities/ssh/types';
import { decodePayload } from './payloads';
import { CliError } from './upgrades';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const EventType = temporal.api.enums.v1.EventType;

export interface AuditRow extends CommandRecord {
  /** When the activity's result was recorded. */
  at: string;
  workflowId: string;
  activity: string;
  /** The runbook-like summary the workflow gave the activity (also what the Web UI shows). */
  summary: string;
}

export interface FailedActivity {
  at: string;
  workflowId: string;
  activity: string;
  summary: string;
  attempt: number;
  error: string;
}

export interface CommandAudit {
  workflowId: string;
  commands: AuditRow[];
  /** Failed activities keep no command records in history; listed so the log has no silent gaps. */
  failedActivities: FailedActivity[];
}

function eventTime(e: HistoryEvent): string {
  const t = e.eventTime;
  if (!t) return '';
  return new Date(Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6)).toISOString();
}

function isCommandRecord(v: unknown): v is CommandRecord {
  const r = v as Partial<CommandRecord> | null;
  return (
    !!r &&
    typeof r === 'object' &&
    typeof r.node === 'string' &&
    typeof r.command === 'string' &&
    typeof r.durationMs === 'number'
  );
}

async function auditOne(
  client: Client,
  workflowId: string,
  runId: string | undefined,
  out: CommandAudit,
): Promise<void> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const scheduled = new Map<string, { activity: string; summary: string }>();
  const children: { workflowId: string; runId?: string }[] = [];
  for (const e of history.events ?? []) {
    const type = e.eventType;
    if (type === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) {
      const a = e.activityTaskScheduledEventAttributes;
      const summary = await decodePayload(client, e.userMetadata?.summary);
      scheduled.set(String(e.eventId), {
        activity: a?.activityType?.name ?? '?',
        summary: typeof summary === 'string' ? summary : '',
      });
    } else if (type === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
      const a = e.activityTaskCompletedEventAttributes;
      const from = scheduled.get(String(a?.scheduledEventId)) ?? { activity: '?', summary: '' };
      const result = (await decodePayload(client, a?.result?.payloads?.[0])) as { commands?: unknown } | undefined;
      const records = Array.isArray(result?.commands) ? result.commands.filter(isCommandRecord) : [];
      for (const r of records) {
        out.commands.push({
          at: eventTime(e),
          workflowId,
          ...from,
          node: r.node,
          command: r.command,
          exitCode: r.exitCode,
          ...(r.signal ? { signal: r.signal } : {}),
          durationMs: r.durationMs,
          ...(r.reattached ? { reattached: true } : {}),
        });
      }
    } else if (type === EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED) {
      const a = e.activityTaskFailedEventAttributes;
      const from = scheduled.get(String(a?.scheduledEventId)) ?? { activity: '?', summary: '' };
      const started = (history.events ?? []).find((x) => String(x.eventId) === String(a?.startedEventId));
      out.failedActivities.push({
        at: eventTime(e),
        workflowId,
        ...from,
        attempt: started?.activityTaskStartedEventAttributes?.attempt ?? 0,
        error: a?.failure?.cause?.message ?? a?.failure?.message ?? 'failed',
      });
    } else if (type === EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED) {
      const x = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution;
      if (x?.workflowId) children.push({ workflowId: x.workflowId, ...(x.runId ? { runId: x.runId } : {}) });
    }
  }
  // A child's commands belong where the parent started it; sorting by time below puts them there.
  for (const c of children) await auditOne(client, c.workflowId, c.runId, out);
}

export async function commandAudit(client: Client, workflowId: string): Promise<CommandAudit> {
  const out: CommandAudit = { workflowId, commands: [], failedActivities: [] };
  try {
    await auditOne(client, workflowId, undefined, out);
  } catch (err) {
    // fetchHistory passes the server's NOT_FOUND (gRPC code 5) through as is.
    if (err instanceof WorkflowNotFoundError || (isGrpcServiceError(err) && err.code === 5))
      throw new CliError(`no upgrade with workflow id "${workflowId}"; "nova-upgrade list" shows them`);
    throw err;
  }
  const byTime = (a: { at: string }, b: { at: string }) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0);
  out.commands.sort(byTime);
  out.failedActivities.sort(byTime);
  return out;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** One line per command, under the runbook line (the activity's summary) that ran it. */
export function auditTable(a: CommandAudit): string {
  if (!a.commands.length && !a.failedActivities.length) return `no remote command recorded yet for ${a.workflowId}`;
  const lines: string[] = [];
  const nodeWidth = Math.max(4, ...a.commands.map((c) => c.node.length));
  let heading = '';
  for (const c of a.commands) {
    const h = `${c.at.slice(0, 19).replace('T', ' ')}  ${c.summary || c.activity}${c.workflowId === a.workflowId ? '' : `  [${c.workflowId.slice(a.workflowId.length + 1)}]`}`;
    if (h !== heading) lines.push((heading = h));
    const exit = c.exitCode === null ? `signal ${c.signal ?? '?'}` : `exit ${c.exitCode}`;
    lines.push(
      `    ${c.node.padEnd(nodeWidth)}  ${exit.padEnd(7)}  ${seconds(c.durationMs).padStart(8)}  ${c.command}${c.reattached ? '  (reattached)' : ''}`,
    );
  }
  if (a.failedActivities.length) {
    lines.push('', 'Failed activity attempts (their commands are not in the history; the error says what happened):');
    for (const f of a.failedActivities)
      lines.push(
        `  ${f.at.slice(0, 19).replace('T', ' ')}  ${f.summary || f.activity} (attempt ${f.attempt}): ${f.error.split('\n')[0]}`,
      );
  }
  lines.push(
    '',
    `${a.commands.length} command${a.commands.length === 1 ? '' : 's'} on ${new Set(a.commands.map((c) => c.node)).size} node(s)`,
  );
  return lines.join('\n');
}
