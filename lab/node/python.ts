// python3 on a stand-in node: the real /usr/bin/python3 for anything else, but the
// service-version preflight's read (common/serviceRowsScript.ts, run by nova's Python with the
// API config) answers from the stand-in cloud's services records, as nova.db would from each
// cell's services table: one marker line of JSON, the rows per cell, the version each service
// last wrote (its heartbeat's release), never a deleted row.
import { spawnSync } from 'node:child_process';
import { cloudFiles, readServices, type SchemaState } from './cloud';
import { nodeEnv, readJsonOr } from './env';
import { nodeLayout, stateLayout, type NodeConfig } from './layout';
import { readHeartbeat } from './units';

/** The read's first line (common/serviceRowsScript.ts), which this stand-in recognises. */
const READ = '# nova-upgrade: the services rows of every cell';
const MARKER = 'NOVA_UPGRADE_SERVICE_ROWS';

/**
 * SERVICE_VERSION by nova major, as inventory/releases.ts records it from nova/objects/service.py
 * (lab/node scripts are compiled alone, so they cannot import it; test/serviceVersionsLab checks
 * the two agree).
 */
export const LAB_SERVICE_VERSION: Record<number, number> = {
  27: 66,
  28: 66,
  29: 67,
  30: 67,
  31: 68,
  32: 70,
  33: 72,
  34: 74,
};

export function labServiceVersion(release: string | undefined): number {
  return LAB_SERVICE_VERSION[Number((release ?? '').split('.')[0])] ?? 0;
}

function sqlTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19);
}

function serviceRows(): void {
  const env = nodeEnv();
  const schema = readJsonOr<SchemaState | undefined>(cloudFiles(env.stateDir).schema, undefined);
  const records = readServices(env.stateDir);
  const cells = [...new Set(['cell0', 'cell1', ...records.map((r) => r.cell)])];
  const out = cells.map((cell) => ({
    cell,
    rows: records
      .filter((r) => r.cell === cell)
      .map((r, i) => {
        const root = stateLayout(env.stateDir).node(r.host);
        const cfg = readJsonOr<NodeConfig | undefined>(nodeLayout(root).config, undefined);
        const hb = cfg?.units.includes(r.unit) ? readHeartbeat({ node: nodeLayout(root) }, r.unit) : undefined;
        const seen = hb ? hb.mtimeMs : Date.parse(`${r.lastSeen.slice(0, 19)}Z`);
        return {
          id: i + 1,
          uuid: r.id,
          host: r.host,
          binary: r.binary,
          version: hb ? labServiceVersion(hb.version) : (r.serviceVersion ?? labServiceVersion(schema?.api?.release)),
          last_seen_up: sqlTime(seen),
          created_at: sqlTime(seen),
          forced_down: r.forcedDown,
          deleted: 0,
          disabled: r.disabled,
        };
      }),
  }));
  process.stdout.write(`${MARKER} ${JSON.stringify(out)}\n`);
}

export function main(argv: string[]): void {
  if (argv[0] === '-c' && (argv[1] ?? '').startsWith(READ)) return serviceRows();
  const r = spawnSync('/usr/bin/python3', argv, { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
