// The service versions nova's services tables hold, judged against the release an upgrade goes
// to, before anything changes. Pure: an activity reads the rows (SERVICES_QUERY in each cell
// database), the workflow or the activity judges them with judgeServiceVersions.
//
// What nova itself does with these rows (openstack/nova master 00a030403f, unchanged since 27.0.0):
// - nova/utils.py raise_if_old_compute: every conductor, scheduler and nova-api of release T,
//   at start, takes the minimum nova-compute version across all cells and refuses to start
//   (TooOldComputeService) when it is below SERVICE_VERSION_ALIASES[OLDEST_SUPPORTED_SERVICE_VERSION]
//   of T, unless [workarounds]disable_compute_service_check_for_ffu turns that into a warning.
//   `nova-status upgrade check` reports the same as "Older than N-1 computes".
// - nova/db/main/api.py service_get_minimum_version: the minimum counts every row with
//   deleted = 0 and forced_down = false, up or down. A compute that died or was renamed keeps
//   counting until its record is deleted (or forced down).
// - nova/objects/service.py get_minimum_version_all_cells: a cell whose minimum is 0 (a row that
//   never reported a version) is left out entirely, old computes in it included.
// - nova/compute/rpcapi.py _determine_version_cap: with [upgrade_levels] compute = auto the compute
//   RPC is capped at what that minimum version speaks, so one stale row holds the whole cloud back.
// - nova/servicegroup/drivers/db.py is_up: up when last_seen_up (or created_at) is at most
//   [DEFAULT] service_down_time (60 s by default) ago.
import {
  NOVA_RELEASES,
  NOVA_SERVICE_DOWN_SECONDS,
  computeRpcOf,
  describeServiceVersion,
  oldestSupportedServiceVersion,
  releaseOf,
  type NovaRelease,
} from '../../inventory/releases';
import { z } from 'zod';
import { parseNovaTimestamp } from './serviceList';
import { SERVICE_ROWS_MARKER } from '../../common/serviceRowsScript';

const COMPUTE = 'nova-compute';
const WSGI_BINARIES = new Set(['nova-osapi_compute', 'nova-metadata']);

/**
 * What to read from each cell database (cell0 included), e.g. with
 * `mysql --batch --defaults-file=<cell's credentials> <cell db> -e "<SERVICES_QUERY>"`.
 * `binary` is a reserved word in MySQL, hence the backquotes.
 */
export const SERVICES_QUERY =
  'SELECT id, uuid, host, `binary`, version, last_seen_up, created_at, forced_down, deleted, disabled FROM services ORDER BY id';

/** One row of a cell's services table, as nova stores it. */
export interface ServiceRow {
  id: number;
  uuid?: string | null;
  host: string;
  binary: string;
  /** SERVICE_VERSION of the code that last wrote the row; 0 if it never reported one. */
  version: number;
  /** Naive UTC, as nova stores it ("2026-04-01 10:00:00"), or ISO 8601. */
  lastSeenUp: string | null;
  createdAt: string | null;
  forcedDown: boolean;
  /** nova's soft delete: 0 while the row is live, the row's id once deleted. */
  deleted: number;
  disabled?: boolean;
}

export interface CellServices {
  cell: string;
  rows: ServiceRow[];
}

/**
 * Parses `mysql --batch` output of SERVICES_QUERY: a header line, then tab-separated rows, NULL
 * for a missing value, 0/1 for booleans.
 */
export function parseServiceRows(output: string): ServiceRow[] {
  const lines = output.split('\n').filter((l) => l.trim() !== '');
  if (!lines.length) return [];
  const header = lines[0]!.split('\t').map((h) => h.trim());
  const need = ['id', 'host', 'binary', 'version', 'last_seen_up', 'created_at', 'forced_down', 'deleted'];
  const missing = need.filter((n) => !header.includes(n));
  if (missing.length)
    throw new Error(`the services query printed no column ${missing.join(', ')} (header: ${lines[0]})`);
  return lines.slice(1).map((line, i) => {
    const cells = line.split('\t');
    const get = (name: string): string | null => {
      const v = cells[header.indexOf(name)];
      return v === undefined || v === 'NULL' ? null : v;
    };
    const int = (name: string): number => {
      const v = Number(get(name) ?? '0');
      if (!Number.isInteger(v))
        throw new Error(`services row ${i + 1}: ${name} is ${JSON.stringify(get(name))}, not a whole number`);
      return v;
    };
    const row: ServiceRow = {
      id: int('id'),
      host: get('host') ?? '',
      binary: get('binary') ?? '',
      version: int('version'),
      lastSeenUp: get('last_seen_up'),
      createdAt: get('created_at'),
      forcedDown: int('forced_down') !== 0,
      deleted: int('deleted'),
    };
    if (header.includes('uuid')) row.uuid = get('uuid');
    if (header.includes('disabled')) row.disabled = int('disabled') !== 0;
    return row;
  });
}

export type FindingReason = 'older-than-envelope' | 'down' | 'not-in-inventory' | 'excluded';

export interface ServiceFinding {
  cell: string;
  id: number;
  /** What `openstack compute service delete` takes: the uuid when the row has one. */
  ref: string;
  host: string;
  binary: string;
  version: number;
  state: 'up' | 'down';
  /** The last heartbeat nova counts, as ISO 8601 UTC; absent if the row has none. */
  lastSeen?: string;
  reason: FindingReason;
  /** One sentence naming the host, its cell and its version. */
  sentence: string;
}

export interface ServiceVersionInput {
  cells: CellServices[];
  /** The release the upgrade goes to: its envelope is what counts. */
  to: string;
  /** When the rows were read, ms since the epoch (workflow time in a workflow). */
  now: number;
  /** [DEFAULT] service_down_time of the cloud, when not nova's default. */
  serviceDownSeconds?: number;
  /** nova host names of the inventory's compute nodes; without it no record counts as orphaned. */
  inventoryComputeHosts?: string[];
  /** nova host names this run leaves alone (compute.exclude). */
  excludedHosts?: string[];
}

export interface ServiceVersionReport {
  to: string;
  /** The oldest nova-compute version `to` starts beside, and the alias that sets it. */
  oldestSupportedServiceVersion: number;
  oldestSupported: string;
  /** nova's own minimum across cells, as raise_if_old_compute computes it; 0 when it counts no compute. */
  minimumComputeVersion: number;
  /** Whether nova's own start check passes; tooOld is stricter (it sees the cells nova leaves out). */
  novaWouldStart: boolean;
  /** Computes below the envelope of `to`: each stops the start. */
  tooOld: ServiceFinding[];
  /** Records that would keep the minimum (and the compute RPC pin) below `to` after the run. */
  pinning: ServiceFinding[];
  /** What nova leaves out, or counts only for other purposes, one sentence each. */
  notes: string[];
  summary: string;
}

function isoOf(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString().replace('.000Z', 'Z');
}

/** The first release whose services write at least this version: what a too-old compute must reach. */
function firstReleaseAtLeast(version: number): NovaRelease | undefined {
  return NOVA_RELEASES.find((r) => r.serviceVersion >= version);
}

function counted(r: ServiceRow): boolean {
  return r.binary === COMPUTE && r.deleted === 0 && !r.forcedDown;
}

/**
 * Which computes are older than the envelope of `to` (naming host and version), and which
 * down, orphaned or excluded records would keep nova's minimum compute version and RPC pin low.
 */
export function judgeServiceVersions(input: ServiceVersionInput): ServiceVersionReport {
  const target = releaseOf(input.to);
  if (!target) throw new Error(`release.to: nova ${input.to} is not in the release model`);
  const oldest = oldestSupportedServiceVersion(target);
  const downAfterMs = (input.serviceDownSeconds ?? NOVA_SERVICE_DOWN_SECONDS) * 1000;
  const inventory = input.inventoryComputeHosts ? new Set(input.inventoryComputeHosts) : undefined;
  const excluded = new Set(input.excludedHosts ?? []);
  const rpcAfter = computeRpcOf(target.serviceVersion);
  const tooOld: ServiceFinding[] = [];
  const pinning: ServiceFinding[] = [];
  const notes: string[] = [];

  let minimum = 0;
  for (const { cell, rows } of input.cells) {
    const live = rows.filter(counted);
    // nova: min() per cell, then cells whose minimum is 0 are left out.
    const cellMin = live.length ? Math.min(...live.map((r) => r.version)) : 0;
    if (cellMin > 0) minimum = minimum ? Math.min(minimum, cellMin) : cellMin;

    for (const r of rows) {
      if (r.deleted !== 0) continue;
      const seenMs = parseNovaTimestamp(r.lastSeenUp) ?? parseNovaTimestamp(r.createdAt);
      const up = seenMs !== undefined && Math.abs(input.now - seenMs) <= downAfterMs;
      const lastSeen = isoOf(seenMs);
      const who = `${r.binary} on ${r.host} (${cell}, id ${r.id})`;
      const since = lastSeen ? `last seen ${lastSeen}` : 'never seen';
      const ref = r.uuid ?? String(r.id);
      const finding = (reason: FindingReason, sentence: string): ServiceFinding => ({
        cell,
        id: r.id,
        ref,
        host: r.host,
        binary: r.binary,
        version: r.version,
        state: up ? 'up' : 'down',
        ...(lastSeen ? { lastSeen } : {}),
        reason,
        sentence,
      });

      if (r.binary !== COMPUTE) {
        // nova-api and nova-metadata write their record when a WSGI worker starts and never
        // heartbeat (nova/api/openstack/wsgi_app.py _setup_service): "down" says nothing there.
        if (!up && !WSGI_BINARIES.has(r.binary) && r.version < target.serviceVersion) {
          notes.push(
            `${who} is down (${since}) at service version ${describeServiceVersion(r.version)}; nova's start check and the compute RPC pin count only nova-compute records, so it blocks nothing, but it stays in the service list until deleted`,
          );
        }
        continue;
      }
      if (r.forcedDown) {
        if (r.version < target.serviceVersion)
          notes.push(
            `${who} is forced down, so nova leaves its service version ${describeServiceVersion(r.version)} out of the minimum; it will count again once forced_down is cleared`,
          );
        continue;
      }
      if (r.version === 0) {
        notes.push(
          `${who} has never reported a service version (0), so nova leaves ${cell} out of its minimum and its own start check cannot see old computes there`,
        );
        continue;
      }

      if (r.version < oldest) {
        const reach = firstReleaseAtLeast(oldest);
        const remedy = up
          ? `upgrade ${r.host} to ${reach ? `${reach.major}.x` : `a release writing ${oldest}`} or later first`
          : `delete the record ("openstack compute service delete ${ref}") if ${r.host} is gone, or bring it back on ${reach ? `${reach.major}.x` : `a release writing ${oldest}`} or later`;
        const state = up ? 'runs' : `is down (${since}) but still counts at`;
        tooOld.push(
          finding(
            'older-than-envelope',
            `${who} ${state} service version ${describeServiceVersion(r.version)}, older than the ${oldest} (${target.oldestSupported}) nova ${input.to} accepts, so its conductors and nova-api would refuse to start; ${remedy}`,
          ),
        );
        continue;
      }
      if (r.version >= target.serviceVersion) continue;

      const rpcNow = computeRpcOf(r.version);
      const effect =
        rpcNow && rpcAfter && rpcNow !== rpcAfter
          ? `would keep the compute RPC pinned at ${rpcNow} instead of ${rpcAfter} after every other compute runs ${input.to}`
          : `would keep nova's minimum compute service version at ${r.version} instead of ${target.serviceVersion} after every other compute runs ${input.to}, holding back what waits for it`;
      const notInInventory = inventory && !inventory.has(r.host);
      if (notInInventory) {
        pinning.push(
          finding(
            'not-in-inventory',
            `${who} is ${up ? 'up' : `down (${since})`} and not in the inventory, so this run will not upgrade it, and its service version ${r.version} ${effect}; ${up ? 'add the host to the inventory' : `delete the record ("openstack compute service delete ${ref}") if ${r.host} is gone`}`,
          ),
        );
      } else if (excluded.has(r.host)) {
        pinning.push(
          finding(
            'excluded',
            `${who} is excluded by compute.exclude, so this run will not upgrade it, and its service version ${r.version} ${effect}`,
          ),
        );
      } else if (!up) {
        pinning.push(
          finding(
            'down',
            `${who} is down (${since}) but still counts at service version ${r.version}, so it ${effect}; delete the record ("openstack compute service delete ${ref}") if ${r.host} is gone, or bring it back to be upgraded`,
          ),
        );
      }
    }
  }

  const novaWouldStart = minimum === 0 || minimum >= oldest;
  const parts = [
    tooOld.length
      ? `${tooOld.length} compute record${tooOld.length === 1 ? ' is' : 's are'} older than ${oldest} (${tooOld.map((f) => `${f.host} at ${f.version}`).join(', ')})`
      : `every counted compute is at ${oldest} or newer`,
    ...(pinning.length
      ? [
          `${pinning.length} record${pinning.length === 1 ? '' : 's'} would keep the compute RPC pinned (${pinning.map((f) => f.host).join(', ')})`,
        ]
      : []),
  ];
  return {
    to: input.to,
    oldestSupportedServiceVersion: oldest,
    oldestSupported: target.oldestSupported,
    minimumComputeVersion: minimum,
    novaWouldStart,
    tooOld,
    pinning,
    notes,
    summary: `nova ${input.to} starts beside computes down to service version ${oldest} (${target.oldestSupported}); ${parts.join('; ')}`,
  };
}

const rowJson = z.object({
  id: z.number().int(),
  uuid: z.string().nullable().optional(),
  host: z.string(),
  binary: z.string(),
  version: z.number().int(),
  last_seen_up: z.string().nullable(),
  created_at: z.string().nullable(),
  forced_down: z.boolean(),
  deleted: z.number().int(),
  disabled: z.boolean().optional(),
});
const cellsJson = z.array(z.object({ cell: z.string(), uuid: z.string().optional(), rows: z.array(rowJson) }));

/** Reads the script's output: its marker line, then nova's rows per cell. */
export function parseServiceRowsOutput(output: string): CellServices[] {
  const line = output.split('\n').find((l) => l.startsWith(`${SERVICE_ROWS_MARKER} `));
  if (!line)
    throw new Error(`the services read printed no ${SERVICE_ROWS_MARKER} line: ${output.slice(0, 300) || '(nothing)'}`);
  let doc: unknown;
  try {
    doc = JSON.parse(line.slice(SERVICE_ROWS_MARKER.length + 1));
  } catch {
    throw new Error(`the services read printed no JSON after ${SERVICE_ROWS_MARKER}: ${line.slice(0, 300)}`);
  }
  const parsed = cellsJson.safeParse(doc);
  if (!parsed.success)
    throw new Error(`the services read printed JSON of an unexpected shape: ${parsed.error.issues[0]?.message ?? ''}`);
  return parsed.data.map((c) => ({
    cell: c.cell,
    rows: c.rows.map((r) => ({
      id: r.id,
      ...(r.uuid !== undefined ? { uuid: r.uuid } : {}),
      host: r.host,
      binary: r.binary,
      version: r.version,
      lastSeenUp: r.last_seen_up,
      createdAt: r.created_at,
      forcedDown: r.forced_down,
      deleted: r.deleted,
      ...(r.disabled !== undefined ? { disabled: r.disabled } : {}),
    })),
  }));
}
