// nova-manage: --version, api_db sync/version, db sync/version and db online_data_migrations,
// with nova's own output and exit codes (see nova/cmd/manage.py), against the lab's cloud files.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CELL0_UUID, cloudFiles, labUuid, ONLINE_MIGRATIONS, readSchema, revisionFor, updateSchema } from './cloud';
import { codeVersion, fail, nodeEnv, readJsonOr, readTextOr, withLock, writeJson, type NodeEnv } from './env';
import { FAULTS } from './layout';
import { prettyTable } from './prettytable';

const majorOf = (v: string) => Number(v.split('.')[0]);

/** oslo.config's view of one option: the last value in the named section. */
export function iniValue(text: string, section: string, key: string): string | undefined {
  let cur = '';
  let found: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const h = /^\[([^\]]+)\]$/.exec(line);
    if (h) cur = h[1]!.trim();
    else if (cur === section) {
      const kv = /^([A-Za-z0-9_.-]+)\s*[=:]\s*(.*)$/.exec(line);
      if (kv && kv[1] === key) found = kv[2]!.trim();
    }
  }
  return found;
}

function loadConfig(env: NodeEnv, files: string[]): string {
  // In a kolla lab container, kolla_set_configs has put the service's config at /etc/nova/nova.conf.
  const paths = files.length ? files : [process.env.NOVA_LAB_NOVA_CONF || env.node.novaConf];
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length) fail(`Failed to find some config files: ${missing.join(',')}`, 1);
  return paths.map((p) => readFileSync(p, 'utf8')).join('\n');
}

/** The cell a [database] connection points at: nova_cell0 → cell0, nova_cell1 → cell1. */
function cellOf(conf: string): string {
  const conn = iniValue(conf, 'database', 'connection');
  if (!conn) fail('nova-manage: [database] connection is not set in the configuration', 1);
  const db = /\/([A-Za-z0-9_]+)(\?|$)/.exec(conn)?.[1] ?? 'nova';
  return /^nova_(cell\d+)$/.exec(db)?.[1] ?? db;
}

function syncCell(env: NodeEnv, cell: string, release: string): void {
  updateSchema(env.stateDir, (s) => {
    const at = s.cells[cell];
    if (at && majorOf(at.release) > majorOf(release)) {
      fail(
        `ERROR: Database schema of ${cell} is newer (${at.release}) than this code (${release}); Can't locate revision identified by '${at.revision}'`,
        1,
      );
    }
    return { ...s, cells: { ...s.cells, [cell]: { release, revision: revisionFor('main', release) } } };
  });
}

/** Like nova-manage: the migrations of the cell whose [database] the config points at, only. */
function onlineDataMigrations(env: NodeEnv, cell: string, maxCountArg: string | undefined): number {
  let maxCount = 50;
  const unlimited = maxCountArg === undefined;
  if (!unlimited) {
    maxCount = /^-?\d+$/.test(maxCountArg) ? Number(maxCountArg) : -1;
    if (maxCount < 1) {
      process.stdout.write('Must supply a positive value for max_number\n');
      return 127;
    }
  } else process.stdout.write(`Running batches of ${maxCount} until complete\n`);
  const faulty = readTextOr(join(env.state.faults, FAULTS.onlineDataMigrations), '').trim();
  const file = cloudFiles(env.stateDir).migrations;
  return withLock(cloudFiles(env.stateDir).dir, () => {
    const all = readJsonOr<{ pendingByCell: Record<string, Record<string, number>> }>(file, { pendingByCell: {} });
    const state = { pending: all.pendingByCell[cell] ?? {} };
    const info = new Map<string, [number, number]>();
    let exceptions = false;
    let ran: number | undefined;
    const out: string[] = [];
    while (ran === undefined || ran !== 0) {
      ran = 0;
      let batch = 0;
      for (const name of ONLINE_MIGRATIONS) {
        let found = 0;
        let done = 0;
        if (name === faulty) {
          out.push(`Error attempting to run <function ${name} at 0x7f3c5a1b2e80>`);
          exceptions = true;
        } else {
          found = Math.min(state.pending[name] ?? 0, maxCount - batch);
          done = found;
          state.pending[name] = (state.pending[name] ?? 0) - done;
        }
        if (found) out.push(`${found} rows matched query ${name}, ${done} migrated`);
        const prev = info.get(name) ?? [0, 0];
        info.set(name, [prev[0] + found, prev[1] + done]);
        ran += done;
        batch += done;
        if (batch >= maxCount) break;
      }
      if (!unlimited) break;
    }
    writeJson(file, { pendingByCell: { ...all.pendingByCell, [cell]: state.pending } });
    const names = [...info.keys()].sort();
    out.push(
      prettyTable(
        ['Migration', 'Total Needed', 'Completed'],
        names.map((n) => [n, ...info.get(n)!]),
      ),
    );
    let code = ran ? 1 : 0;
    if (exceptions && (unlimited || !ran)) {
      out.push('Some migrations failed unexpectedly. Check log for details.');
      code = 2;
    }
    process.stdout.write(`${out.join('\n')}\n`);
    return code;
  });
}

/**
 * `cell_v2 list_cells` as nova/cmd/manage.py prints it: PrettyTable (centred) with Name, UUID,
 * Transport URL, Database Connection (passwords masked as ****) and Disabled, sorted by name.
 * The lab's cells are the cell databases of its cloud.
 */
function listCells(env: NodeEnv, conf: string): void {
  const api = iniValue(conf, 'api_database', 'connection');
  if (!api) fail('nova-manage: [api_database] connection is not set in the configuration', 1);
  const host = /@([^/:]+)/.exec(api)?.[1] ?? '127.0.0.1';
  const names = Object.keys(readSchema(env.stateDir).cells).sort();
  const rows = names.map((name) =>
    name === 'cell0'
      ? [name, CELL0_UUID, 'none:///', `mysql+pymysql://root:****@${host}/nova_cell0?charset=utf8`, 'False']
      : [
          name,
          labUuid(`cell/${name}`),
          `rabbit://stackrabbit:****@${host}:5672/nova_${name}`,
          `mysql+pymysql://root:****@${host}/nova_${name}?charset=utf8`,
          'False',
        ],
  );
  process.stdout.write(`${prettyTable(['Name', 'UUID', 'Transport URL', 'Database Connection', 'Disabled'], rows)}\n`);
}

export function main(argv: string[]): void {
  const env = nodeEnv();
  const configFiles: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config-file') configFiles.push(argv[++i] ?? '');
    else if (a.startsWith('--config-file=')) configFiles.push(a.slice('--config-file='.length));
    else rest.push(a);
  }
  const release = codeVersion(env);
  if (rest[0] === '--version') {
    process.stdout.write(`${release}\n`);
    return;
  }
  const [category, action, ...args] = rest;
  const conf = () => loadConfig(env, configFiles);
  const flag = (name: string) => {
    const i = args.findIndex((a) => a === name || a.startsWith(`${name}=`));
    if (i < 0) return undefined;
    return args[i]!.includes('=') ? args[i]!.slice(args[i]!.indexOf('=') + 1) : (args[i + 1] ?? '');
  };

  if (category === 'api_db' && action === 'sync') {
    if (!iniValue(conf(), 'api_database', 'connection'))
      fail('nova-manage: [api_database] connection is not set in the configuration', 1);
    updateSchema(env.stateDir, (s) => ({ ...s, api: { release, revision: revisionFor('api', release) } }));
    return;
  }
  if (category === 'api_db' && action === 'version') {
    conf();
    process.stdout.write(`${readSchema(env.stateDir).api?.revision ?? 'None'}\n`);
    return;
  }
  if (category === 'db' && action === 'sync') {
    const cell = cellOf(conf());
    syncCell(env, cell, release);
    // Without --local_cell, nova-manage syncs cell0 as well as the configured database.
    if (!args.includes('--local_cell') && cell !== 'cell0') syncCell(env, 'cell0', release);
    return;
  }
  if (category === 'db' && action === 'version') {
    const cell = cellOf(conf());
    process.stdout.write(`${readSchema(env.stateDir).cells[cell]?.revision ?? 'None'}\n`);
    return;
  }
  if (category === 'cell_v2' && action === 'list_cells') return listCells(env, conf());
  if (category === 'db' && action === 'online_data_migrations') {
    process.exitCode = onlineDataMigrations(env, cellOf(conf()), flag('--max-count'));
    return;
  }
  fail(
    `usage: nova-manage [-h] [--config-file PATH] [--version] {api_db,db,...} ...\nnova-manage: error: this lab's nova-manage has no "${rest.join(' ')}"`,
    2,
  );
}
