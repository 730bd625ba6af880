// The lab's "cloud database": what nova's API and cell databases and keystone's catalog would
// hold, as JSON files under <stateDir>/cloud shared by every node, as the real databases are.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonOr, withLock, writeJson } from './env';
import { NOVA_UNITS, stateLayout } from './layout';

export interface ServiceRecord {
  id: string;
  binary: string;
  host: string;
  zone: string;
  disabled: boolean;
  disabledReason: string | null;
  forcedDown: boolean;
  /** Which unit on the host reports for this record; lab-only. */
  unit: string;
  cell: string;
  /** updated_at as last stored; what an orphan keeps showing forever. */
  lastSeen: string;
  /** The service version an orphan's record keeps (nothing runs to rewrite it); default: the cloud's release's. */
  serviceVersion?: number;
}

export interface Endpoint {
  ID: string;
  Region: string;
  'Service Name': string;
  'Service Type': string;
  Enabled: boolean;
  Interface: string;
  URL: string;
}

export interface SchemaState {
  api?: SchemaVersion;
  placement?: SchemaVersion;
  cells: Record<string, SchemaVersion>;
}
export interface SchemaVersion {
  release: string;
  revision: string;
}

export interface Server {
  ID: string;
  Name: string;
  Host: string;
  'Task State': string | null;
}

/** nova's online migrations of 2024.x, in nova-manage's order. */
export const ONLINE_MIGRATIONS = [
  'migrate_quota_limits_to_api_db',
  'migrate_quota_classes_to_api_db',
  'migration_migrate_to_uuid',
  'populate_uuids',
  'populate_missing_availability_zones',
  'populate_queued_for_delete',
  'migrate_empty_ratio',
  'fill_virtual_interface_list',
  'populate_user_id',
  'populate_dev_uuids',
  'populate_instance_compute_id',
] as const;

export const cloudFiles = (stateDir: string) => {
  const dir = stateLayout(stateDir).cloud;
  return {
    dir,
    services: join(dir, 'services.json'),
    endpoints: join(dir, 'endpoints.json'),
    schema: join(dir, 'schema.json'),
    migrations: join(dir, 'migrations.json'),
    servers: join(dir, 'servers.json'),
  };
};

/** Stable ids, so a lab brought up twice names the same records the same way. */
export function labUuid(seed: string): string {
  const h = createHash('sha1').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A schema revision id shaped like alembic's; derived, not nova's real ones. */
export function revisionFor(db: string, release: string): string {
  return createHash('sha1').update(`${db}:${release}`).digest('hex').slice(0, 12);
}

export function novaTimestamp(d: Date): string {
  return `${d.toISOString().slice(0, 19)}.000000`;
}

export function serviceRecord(binary: string, host: string, unit: string, cell: string): ServiceRecord {
  return {
    id: labUuid(`${cell}/${host}/${binary}/${unit}`),
    binary,
    host,
    zone: binary === 'nova-compute' ? 'nova' : 'internal',
    disabled: false,
    disabledReason: null,
    forcedDown: false,
    unit,
    cell,
    lastSeen: novaTimestamp(new Date()),
  };
}

export interface CloudSeed {
  controller: string;
  computeHosts: string[];
  release: string;
  endpointUrl: string;
  placementUrl: string;
  pendingMigrations: Record<string, number>;
}

/** Writes only what is missing: a lab brought up again keeps its cloud's history. */
export function initCloud(stateDir: string, seed: CloudSeed): void {
  const f = cloudFiles(stateDir);
  withLock(f.dir, () => {
    if (!existsSync(f.services)) {
      writeJson(f.services, [
        serviceRecord('nova-scheduler', seed.controller, NOVA_UNITS.scheduler, 'cell1'),
        serviceRecord('nova-conductor', seed.controller, NOVA_UNITS.superConductor, 'cell0'),
        serviceRecord('nova-conductor', seed.controller, NOVA_UNITS.cellConductor, 'cell1'),
        ...seed.computeHosts.map((h) => serviceRecord('nova-compute', h, NOVA_UNITS.compute, 'cell1')),
      ]);
    }
    if (!existsSync(f.endpoints)) {
      const ep = (service: string, type: string, url: string): Endpoint => ({
        ID: labUuid(`endpoint/${type}/public`).replace(/-/g, ''),
        Region: 'RegionOne',
        'Service Name': service,
        'Service Type': type,
        Enabled: true,
        Interface: 'public',
        URL: url,
      });
      writeJson(f.endpoints, [
        ep('nova', 'compute', seed.endpointUrl),
        ep('placement', 'placement', seed.placementUrl),
      ]);
    }
    if (!existsSync(f.schema)) {
      const v = (db: string): SchemaVersion => ({ release: seed.release, revision: revisionFor(db, seed.release) });
      writeJson(f.schema, {
        api: v('api'),
        placement: v('placement'),
        cells: { cell0: v('main'), cell1: v('main') },
      } satisfies SchemaState);
    }
    // Per cell, as in nova: the instances (and so the rows to migrate) live in cell1; cell0
    // holds only instances that failed to schedule, seeded with a few so both cells have work.
    if (!existsSync(f.migrations)) {
      const cell0 = Object.fromEntries(
        Object.entries(seed.pendingMigrations).map(([k, n]) => [k, n ? Math.max(1, Math.ceil(n / 10)) : 0]),
      );
      writeJson(f.migrations, { pendingByCell: { cell0, cell1: seed.pendingMigrations } });
    }
    if (!existsSync(f.servers)) writeJson(f.servers, []);
  });
}

export function readServices(stateDir: string): ServiceRecord[] {
  return readJsonOr<ServiceRecord[]>(cloudFiles(stateDir).services, []);
}

export function updateServices(stateDir: string, fn: (records: ServiceRecord[]) => ServiceRecord[]): ServiceRecord[] {
  const f = cloudFiles(stateDir);
  return withLock(f.dir, () => {
    const next = fn(readServices(stateDir));
    writeJson(f.services, next);
    return next;
  });
}

/** A record for a host that is gone (decommissioned without `compute service delete`). */
export function addOrphanService(
  stateDir: string,
  host: string,
  binary = 'nova-compute',
  lastSeen = new Date(Date.now() - 86_400_000),
  serviceVersion?: number,
): ServiceRecord {
  const rec: ServiceRecord = {
    ...serviceRecord(binary, host, binary === 'nova-compute' ? NOVA_UNITS.compute : NOVA_UNITS.cellConductor, 'cell1'),
    lastSeen: novaTimestamp(lastSeen),
    ...(serviceVersion !== undefined ? { serviceVersion } : {}),
  };
  updateServices(stateDir, (rs) => [...rs.filter((r) => r.id !== rec.id), rec]);
  return rec;
}

/** Another catalog entry (a second region, another interface), as `openstack endpoint create` makes it. */
export function addLabEndpoint(stateDir: string, e: Omit<Endpoint, 'ID' | 'Enabled'>): Endpoint {
  const f = cloudFiles(stateDir);
  const ep: Endpoint = {
    ID: labUuid(`endpoint/${e['Service Type']}/${e.Interface}/${e.Region}`).replace(/-/g, ''),
    Enabled: true,
    ...e,
  };
  withLock(f.dir, () =>
    writeJson(f.endpoints, [...readJsonOr<Endpoint[]>(f.endpoints, []).filter((x) => x.ID !== ep.ID), ep]),
  );
  return ep;
}

export function readEndpoints(stateDir: string): Endpoint[] {
  return readJsonOr<Endpoint[]>(cloudFiles(stateDir).endpoints, []);
}

/** nova's CELL0_UUID (nova/objects/cell_mapping.py). */
export const CELL0_UUID = '00000000-0000-0000-0000-000000000000';

/**
 * A cell that nova maps but the inventory may not know: created as `nova-manage cell_v2
 * create_cell` would, its database at `release` with `pending` rows to migrate.
 */
export function addLabCell(
  stateDir: string,
  name: string,
  release: string,
  pending: Record<string, number> = {},
): void {
  const f = cloudFiles(stateDir);
  withLock(f.dir, () => {
    const s = readJsonOr<SchemaState>(f.schema, { cells: {} });
    if (!s.cells[name]) s.cells[name] = { release, revision: revisionFor('main', release) };
    writeJson(f.schema, s);
    const m = readJsonOr<{ pendingByCell: Record<string, Record<string, number>> }>(f.migrations, {
      pendingByCell: {},
    });
    m.pendingByCell[name] = { ...pending, ...(m.pendingByCell[name] ?? {}) };
    writeJson(f.migrations, m);
  });
}

export function readSchema(stateDir: string): SchemaState {
  return readJsonOr<SchemaState>(cloudFiles(stateDir).schema, { cells: {} });
}

export function updateSchema(stateDir: string, fn: (s: SchemaState) => SchemaState): void {
  const f = cloudFiles(stateDir);
  withLock(f.dir, () => writeJson(f.schema, fn(readSchema(stateDir))));
}
