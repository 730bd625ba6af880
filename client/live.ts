// What only the CLI can see: the heartbeat details of the activities running right now (session
// counts during a drain, the VIP probe's numbers, tempest's progress). The workflow never sees
// heartbeats, so its progress query cannot carry them; the server's describe call does.
import type { Client } from '@temporalio/client';
import { decodePayload } from './payloads';

export interface LiveActivity {
  /** The upgrade or one of its compute-batch children. */
  workflowId: string;
  activity: string;
  attempt: number;
  /** The last heartbeat's details, decoded; absent until the first heartbeat arrives. */
  details?: unknown;
  lastFailure?: string;
}

async function pendingOf(
  client: Client,
  workflowId: string,
  runId: string | undefined,
  depth: number,
): Promise<LiveActivity[]> {
  const desc = await client.workflow.getHandle(workflowId, runId).describe();
  const out: LiveActivity[] = [];
  for (const a of desc.raw.pendingActivities ?? []) {
    const details = await decodePayload(client, a.heartbeatDetails?.payloads?.[0]).catch(() => undefined);
    out.push({
      workflowId,
      activity: a.activityType?.name ?? '?',
      attempt: a.attempt ?? 1,
      ...(details !== undefined ? { details } : {}),
      ...(a.lastFailure?.message ? { lastFailure: a.lastFailure.message } : {}),
    });
  }
  // Compute batches run in child workflows: their activities are pending there, not here.
  if (depth < 1) {
    for (const c of desc.raw.pendingChildren ?? []) {
      if (c.workflowId)
        out.push(...(await pendingOf(client, c.workflowId, c.runId ?? undefined, depth + 1).catch(() => [])));
    }
  }
  return out;
}

/** Never fails the watch: without live details the progress view is still right. */
export async function liveActivities(client: Client, workflowId: string): Promise<LiveActivity[]> {
  return pendingOf(client, workflowId, undefined, 0).catch(() => []);
}
