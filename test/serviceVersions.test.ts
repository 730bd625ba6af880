// The service-version preflight judgement over realistic services rows: a devstack-shaped cloud
// on 31.x (cell0 holds the super conductor and the scheduler, cell1 its conductor and computes),
// with the stale records operators meet: a dead compute on an older release, a renamed host, a
// soft-deleted row, a forced-down compute, a down scheduler.
import { describe, expect, it } from 'vitest';
import {
  judgeServiceVersions,
  parseServiceRows,
  parseServiceRowsOutput,
  type CellServices,
  type ServiceRow,
} from '../activities/nova/serviceVersions';

const NOW = Date.parse('2026-04-20T12:00:00Z');
const UP = '2026-04-20 11:59:52';

function row(
  id: number,
  host: string,
  binary: string,
  version: number,
  lastSeenUp: string | null,
  extra: Partial<ServiceRow> = {},
): ServiceRow {
  return {
    id,
    uuid: `0b5c6f1e-0000-4000-8000-${String(id).padStart(12, '0')}`,
    host,
    binary,
    version,
    lastSeenUp,
    createdAt: '2025-04-10 09:00:00',
    forcedDown: false,
    deleted: 0,
    disabled: false,
    ...extra,
  };
}

const healthy = (): CellServices[] => [
  {
    cell: 'cell0',
    rows: [row(1, 'controller', 'nova-conductor', 68, UP), row(2, 'controller', 'nova-scheduler', 68, UP)],
  },
  {
    cell: 'cell1',
    rows: [
      row(1, 'controller', 'nova-conductor', 68, UP),
      row(2, 'controller', 'nova-compute', 68, UP),
      row(3, 'apicomp', 'nova-compute', 68, UP),
    ],
  },
];

const inventoryHosts = ['controller', 'apicomp', 'cmp3'];

describe('judgeServiceVersions', () => {
  it('finds nothing in a cloud whose records are all live and current', () => {
    const r = judgeServiceVersions({ cells: healthy(), to: '33.0.0', now: NOW, inventoryComputeHosts: inventoryHosts });
    expect(r).toMatchObject({
      oldestSupportedServiceVersion: 68,
      oldestSupported: 'Epoxy',
      minimumComputeVersion: 68,
      novaWouldStart: true,
      tooOld: [],
      pinning: [],
      notes: [],
    });
    expect(r.summary).toBe(
      'nova 33.0.0 starts beside computes down to service version 68 (Epoxy); every counted compute is at 68 or newer',
    );
  });

  it('a down compute record on an older release blocks the start, naming host and version, as nova would', () => {
    const cells = healthy();
    cells[1]!.rows.push(row(4, 'old-cmp1', 'nova-compute', 67, '2025-11-02 08:14:31'));
    const r = judgeServiceVersions({ cells, to: '33.0.0', now: NOW, inventoryComputeHosts: inventoryHosts });
    expect(r.minimumComputeVersion).toBe(67);
    expect(r.novaWouldStart).toBe(false);
    expect(r.tooOld).toHaveLength(1);
    expect(r.tooOld[0]).toMatchObject({
      cell: 'cell1',
      host: 'old-cmp1',
      version: 67,
      state: 'down',
      lastSeen: '2025-11-02T08:14:31Z',
      reason: 'older-than-envelope',
    });
    expect(r.tooOld[0]!.sentence).toBe(
      'nova-compute on old-cmp1 (cell1, id 4) is down (last seen 2025-11-02T08:14:31Z) but still counts at service version 67 (nova 29.x, 2024.1 Caracal, or 30.x, 2024.2 Dalmatian), older than the 68 (Epoxy) nova 33.0.0 accepts, so its conductors and nova-api would refuse to start; delete the record ("openstack compute service delete 0b5c6f1e-0000-4000-8000-000000000004") if old-cmp1 is gone, or bring it back on 31.x or later',
    );
    expect(r.summary).toBe(
      'nova 33.0.0 starts beside computes down to service version 68 (Epoxy); 1 compute record is older than 68 (old-cmp1 at 67)',
    );
    // The same record is no obstacle to 31.0.0, whose oldest supported is Caracal (66), but it pins.
    const n1 = judgeServiceVersions({ cells, to: '31.0.0', now: NOW, inventoryComputeHosts: inventoryHosts });
    expect(n1).toMatchObject({ novaWouldStart: true, tooOld: [] });
    expect(n1.pinning.map((f) => [f.host, f.reason])).toEqual([['old-cmp1', 'not-in-inventory']]);
  });

  it('a live compute on an older release blocks the start too, and the remedy is to upgrade it', () => {
    const cells = healthy();
    cells[1]!.rows[2] = row(3, 'apicomp', 'nova-compute', 67, UP);
    const r = judgeServiceVersions({ cells, to: '33.0.0', now: NOW, inventoryComputeHosts: inventoryHosts });
    expect(r.tooOld.map((f) => f.sentence)).toEqual([
      'nova-compute on apicomp (cell1, id 3) runs service version 67 (nova 29.x, 2024.1 Caracal, or 30.x, 2024.2 Dalmatian), older than the 68 (Epoxy) nova 33.0.0 accepts, so its conductors and nova-api would refuse to start; upgrade apicomp to 31.x or later first',
    ]);
  });

  it('down and orphaned records that would keep the RPC pinned are listed; deleted and forced-down ones are not counted', () => {
    const cells = healthy();
    cells[1]!.rows.push(
      // A renamed host: the old record stays down for ever.
      row(5, 'cmp-old-name', 'nova-compute', 68, '2026-03-01 07:00:02'),
      // In the inventory but down now: it will be upgraded only if it comes back.
      row(6, 'cmp3', 'nova-compute', 68, '2026-04-20 11:40:00'),
      // Soft-deleted by `openstack compute service delete`: nova ignores it.
      row(7, 'cmp-gone', 'nova-compute', 61, '2024-01-01 00:00:00', { deleted: 7 }),
      // Forced down after a host failure: nova leaves it out of the minimum.
      row(8, 'cmp-dead', 'nova-compute', 66, '2025-12-24 18:00:00', { forcedDown: true }),
    );
    cells[0]!.rows.push(row(3, 'old-ctl', 'nova-scheduler', 66, '2025-09-30 10:00:00'));
    // nova-api's record is written once at start and never heartbeats: no note for it.
    cells[0]!.rows.push(row(4, 'controller', 'nova-osapi_compute', 68, null));
    const r = judgeServiceVersions({ cells, to: '33.0.0', now: NOW, inventoryComputeHosts: inventoryHosts });
    expect(r.tooOld).toEqual([]);
    expect(r.novaWouldStart).toBe(true);
    expect(r.minimumComputeVersion).toBe(68);
    expect(r.pinning.map((f) => [f.host, f.reason, f.state])).toEqual([
      ['cmp-old-name', 'not-in-inventory', 'down'],
      ['cmp3', 'down', 'down'],
    ]);
    expect(r.pinning[0]!.sentence).toBe(
      'nova-compute on cmp-old-name (cell1, id 5) is down (last seen 2026-03-01T07:00:02Z) and not in the inventory, so this run will not upgrade it, and its service version 68 would keep the compute RPC pinned at 6.4 instead of 6.5 after every other compute runs 33.0.0; delete the record ("openstack compute service delete 0b5c6f1e-0000-4000-8000-000000000005") if cmp-old-name is gone',
    );
    expect(r.pinning[1]!.sentence).toBe(
      'nova-compute on cmp3 (cell1, id 6) is down (last seen 2026-04-20T11:40:00Z) but still counts at service version 68, so it would keep the compute RPC pinned at 6.4 instead of 6.5 after every other compute runs 33.0.0; delete the record ("openstack compute service delete 0b5c6f1e-0000-4000-8000-000000000006") if cmp3 is gone, or bring it back to be upgraded',
    );
    expect(r.notes).toEqual([
      "nova-scheduler on old-ctl (cell0, id 3) is down (last seen 2025-09-30T10:00:00Z) at service version 66 (nova 27.x, 2023.1 Antelope, or 28.x, 2023.2 Bobcat); nova's start check and the compute RPC pin count only nova-compute records, so it blocks nothing, but it stays in the service list until deleted",
      'nova-compute on cmp-dead (cell1, id 8) is forced down, so nova leaves its service version 66 (nova 27.x, 2023.1 Antelope, or 28.x, 2023.2 Bobcat) out of the minimum; it will count again once forced_down is cleared',
    ]);
    expect(r.summary).toBe(
      'nova 33.0.0 starts beside computes down to service version 68 (Epoxy); every counted compute is at 68 or newer; 2 records would keep the compute RPC pinned (cmp-old-name, cmp3)',
    );
  });

  it("uses nova's service_down_time: a heartbeat 59 s ago is up, 61 s ago is down, and the cloud's own value wins", () => {
    const cells: CellServices[] = [
      {
        cell: 'cell1',
        rows: [
          row(1, 'cmp3', 'nova-compute', 68, '2026-04-20 11:59:01'),
          row(2, 'apicomp', 'nova-compute', 68, '2026-04-20 11:58:59'),
        ],
      },
    ];
    const r = judgeServiceVersions({ cells, to: '33.0.0', now: NOW });
    expect(r.pinning.map((f) => f.host)).toEqual(['apicomp']);
    expect(judgeServiceVersions({ cells, to: '33.0.0', now: NOW, serviceDownSeconds: 120 }).pinning).toEqual([]);
  });

  it('an up compute left out by compute.exclude keeps the pin, and says why', () => {
    const r = judgeServiceVersions({
      cells: healthy(),
      to: '33.0.0',
      now: NOW,
      inventoryComputeHosts: inventoryHosts,
      excludedHosts: ['apicomp'],
    });
    expect(r.pinning.map((f) => f.sentence)).toEqual([
      'nova-compute on apicomp (cell1, id 3) is excluded by compute.exclude, so this run will not upgrade it, and its service version 68 would keep the compute RPC pinned at 6.4 instead of 6.5 after every other compute runs 33.0.0',
    ]);
  });

  it('sees an old compute in a cell that nova leaves out because another record there reports version 0', () => {
    const cells = healthy();
    cells.push({
      cell: 'cell2',
      rows: [row(1, 'cmp20', 'nova-compute', 0, UP), row(2, 'cmp21', 'nova-compute', 61, UP)],
    });
    const r = judgeServiceVersions({ cells, to: '33.0.0', now: NOW });
    // nova's own minimum skips cell2 entirely (get_minimum_version_all_cells), so it would start.
    expect(r.minimumComputeVersion).toBe(68);
    expect(r.novaWouldStart).toBe(true);
    expect(r.tooOld.map((f) => [f.cell, f.host, f.version])).toEqual([['cell2', 'cmp21', 61]]);
    expect(r.tooOld[0]!.sentence).toContain('service version 61 (Yoga)');
    expect(r.notes).toEqual([
      'nova-compute on cmp20 (cell2, id 1) has never reported a service version (0), so nova leaves cell2 out of its minimum and its own start check cannot see old computes there',
    ]);
  });

  it('refuses a target outside the release model', () => {
    expect(() => judgeServiceVersions({ cells: healthy(), to: '40.0.0', now: NOW })).toThrow(
      'release.to: nova 40.0.0 is not in the release model',
    );
  });
});

describe('parseServiceRows', () => {
  it('reads `mysql --batch` output of SERVICES_QUERY, NULLs and 0/1 booleans included', () => {
    const out = [
      'id\tuuid\thost\tbinary\tversion\tlast_seen_up\tcreated_at\tforced_down\tdeleted\tdisabled',
      '1\t6f2c4d0e-5d7e-4d4e-9a3b-2f1d2b3c4d5e\tcontroller\tnova-conductor\t68\t2026-04-20 11:59:52\t2025-04-10 09:00:00\t0\t0\t0',
      '4\tNULL\told-cmp1\tnova-compute\t67\tNULL\t2024-05-02 10:11:12\t0\t0\t1',
      '7\t9a1b2c3d-0000-4000-8000-000000000007\tcmp-gone\tnova-compute\t61\t2024-01-01 00:00:00\t2023-06-01 00:00:00\t1\t7\t1',
      '',
    ].join('\n');
    expect(parseServiceRows(out)).toEqual([
      {
        id: 1,
        uuid: '6f2c4d0e-5d7e-4d4e-9a3b-2f1d2b3c4d5e',
        host: 'controller',
        binary: 'nova-conductor',
        version: 68,
        lastSeenUp: '2026-04-20 11:59:52',
        createdAt: '2025-04-10 09:00:00',
        forcedDown: false,
        deleted: 0,
        disabled: false,
      },
      {
        id: 4,
        uuid: null,
        host: 'old-cmp1',
        binary: 'nova-compute',
        version: 67,
        lastSeenUp: null,
        createdAt: '2024-05-02 10:11:12',
        forcedDown: false,
        deleted: 0,
        disabled: true,
      },
      {
        id: 7,
        uuid: '9a1b2c3d-0000-4000-8000-000000000007',
        host: 'cmp-gone',
        binary: 'nova-compute',
        version: 61,
        lastSeenUp: '2024-01-01 00:00:00',
        createdAt: '2023-06-01 00:00:00',
        forcedDown: true,
        deleted: 7,
        disabled: true,
      },
    ]);
    // A record that never heartbeat falls back to created_at, as nova's is_up does.
    const r = judgeServiceVersions({ cells: [{ cell: 'cell1', rows: parseServiceRows(out) }], to: '33.0.0', now: NOW });
    expect(r.tooOld.map((f) => [f.host, f.lastSeen, f.ref])).toEqual([['old-cmp1', '2024-05-02T10:11:12Z', '4']]);
    expect(parseServiceRows('')).toEqual([]);
  });

  it('refuses output without the columns it needs, and a version that is no number', () => {
    expect(() => parseServiceRows('id\thost\tbinary\n1\tcontroller\tnova-compute')).toThrow(
      'the services query printed no column version, last_seen_up, created_at, forced_down, deleted',
    );
    expect(() =>
      parseServiceRows(
        'id\thost\tbinary\tversion\tlast_seen_up\tcreated_at\tforced_down\tdeleted\n1\tc\tnova-compute\tabc\tNULL\tNULL\t0\t0',
      ),
    ).toThrow('services row 1: version is "abc", not a whole number');
  });
});

describe('parseServiceRowsOutput', () => {
  it("reads the services read's marker line among nova's own output, per cell", () => {
    const out = [
      'Modules with known eventlet monkey patching issues were imported prior to eventlet monkey patching',
      `NOVA_UPGRADE_SERVICE_ROWS ${JSON.stringify([
        { cell: 'cell0', uuid: '00000000-0000-0000-0000-000000000000', rows: [] },
        {
          cell: 'cell1',
          uuid: 'b3f5c1c4-9a0e-4c57-8d2a-1f0f2f6c2a11',
          rows: [
            {
              id: 3,
              uuid: '6f2c4d0e-5d7e-4d4e-9a3b-2f1d2b3c4d5e',
              host: 'old-cmp1',
              binary: 'nova-compute',
              version: 67,
              last_seen_up: '2026-04-17T12:00:00',
              created_at: '2026-04-17T12:00:00',
              forced_down: false,
              deleted: 0,
              disabled: false,
            },
          ],
        },
      ])}`,
    ].join('\n');
    const cells = parseServiceRowsOutput(out);
    expect(cells.map((c) => [c.cell, c.rows.length])).toEqual([
      ['cell0', 0],
      ['cell1', 1],
    ]);
    const r = judgeServiceVersions({ cells, to: '33.0.2', now: NOW });
    expect(r.tooOld.map((f) => [f.host, f.version, f.state, f.lastSeen])).toEqual([
      ['old-cmp1', 67, 'down', '2026-04-17T12:00:00Z'],
    ]);
  });

  it('refuses output without the marker, or with JSON of another shape', () => {
    expect(() => parseServiceRowsOutput('Traceback (most recent call last):')).toThrow(
      'the services read printed no NOVA_UPGRADE_SERVICE_ROWS line: Traceback (most recent call last):',
    );
    expect(() => parseServiceRowsOutput('NOVA_UPGRADE_SERVICE_ROWS [{"cell": "cell1"}]')).toThrow(
      'the services read printed JSON of an unexpected shape',
    );
  });
});
