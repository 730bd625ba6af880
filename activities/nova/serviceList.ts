// The openstack CLI's JSON for `compute service list` and `server list`, checked at the edge.
import { nonRetryable } from '../common';
import { z } from 'zod';

const serviceRecord = z
  .object({
    // Integer before microversion 2.53, a UUID after.
    ID: z.union([z.number(), z.string()]),
    Binary: z.string(),
    Host: z.string(),
    Zone: z.string().nullable().optional(),
    Status: z.string(),
    State: z.string(),
    'Updated At': z.string().nullable().optional(),
    // Present only with --long.
    'Disabled Reason': z.string().nullable().optional(),
  })
  .loose();
export type ComputeServiceRecord = z.infer<typeof serviceRecord>;

const serverTask = z.object({ ID: z.string(), 'Task State': z.string().nullable().optional() }).loose();
export type ServerTask = z.infer<typeof serverTask>;

function parseJsonArray<T>(schema: z.ZodType<T>, output: string, what: string): T[] {
  let doc: unknown;
  try {
    doc = JSON.parse(output);
  } catch {
    throw new Error(`${what} did not print JSON: ${output.slice(0, 200) || '(nothing)'}`);
  }
  const parsed = z.array(schema).safeParse(doc);
  if (!parsed.success)
    throw new Error(`${what} printed JSON of an unexpected shape: ${parsed.error.issues[0]?.message ?? ''}`);
  return parsed.data;
}

export function parseServiceList(output: string): ComputeServiceRecord[] {
  return parseJsonArray(serviceRecord, output, 'openstack compute service list');
}

export function parseServerTasks(output: string): ServerTask[] {
  const rows = parseJsonArray(serverTask, output, 'openstack server list');
  // python-openstackclient before 6.0 drops an unknown -c column without a word: a missing
  // "Task State" would read as "no task in progress" and let a restart break a migration.
  const blind = rows.find((r) => !('Task State' in r));
  if (blind) {
    throw nonRetryable(
      'NovaTaskStateMissing',
      `openstack server list printed no "Task State" column (server ${blind.ID}); python-openstackclient before 6.0 drops it silently, so no task could be seen`,
    );
  }
  return rows;
}

/**
 * nova prints `updated_at` as naive UTC ("2024-05-01T12:00:00.000000"); read without a zone
 * it would be taken as the worker's local time.
 */
export function parseNovaTimestamp(value: string | null | undefined): number | undefined {
  if (!value || value === 'None') return undefined;
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$/.exec(value.trim());
  if (!m) return undefined;
  const ms = (m[3] ?? '').padEnd(3, '0').slice(0, 3);
  const t = Date.parse(`${m[1]}T${m[2]}.${ms}${m[4] ?? 'Z'}`);
  return Number.isNaN(t) ? undefined : t;
}

export const isTaskInProgress = (s: ServerTask) =>
  s['Task State'] !== null && s['Task State'] !== undefined && s['Task State'] !== '' && s['Task State'] !== 'None';
