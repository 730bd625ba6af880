// The openstack CLI commands the upgrade uses, answering from the lab's cloud files and from
// the service processes themselves: a service is up while its process lives and its heartbeat
// is fresh. (Real nova only sees the heartbeat, so it notices a dead service up to
// service_down_time later; the lab is quicker, never slower.)
import { existsSync } from 'node:fs';
import {
  cloudFiles,
  novaTimestamp,
  readServices,
  updateServices,
  type Endpoint,
  type Server,
  type ServiceRecord,
} from './cloud';
import { fail, nodeEnv, readJsonOr, readTextOr, withLock, writeJson, type NodeEnv } from './env';
import { nodeLayout, stateLayout, type NodeConfig } from './layout';
import { prettyTable } from './prettytable';
import { isUnitProcess, readHeartbeat, readUnitFile, type UnitFile } from './units';

interface Parsed {
  words: string[];
  opts: Map<string, string[]>;
  flags: Set<string>;
}

const VALUE_OPTS = new Set([
  '-f',
  '--format',
  '-c',
  '--column',
  '--host',
  '--service',
  '--interface',
  '--region',
  '--disable-reason',
  '--url',
  '--os-cloud',
  '--sort-column',
  '--name',
  '--os-compute-api-version',
]);

function parse(argv: string[]): Parsed {
  const p: Parsed = { words: [], opts: new Map(), flags: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const key = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    if (VALUE_OPTS.has(key)) {
      const v = key !== a ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) fail(`openstack: error: argument ${key}: expected one argument`, 2);
      p.opts.set(key, [...(p.opts.get(key) ?? []), v]);
    } else if (a.startsWith('-')) p.flags.add(a);
    else p.words.push(a);
  }
  return p;
}
const opt = (p: Parsed, ...names: string[]) => names.flatMap((n) => p.opts.get(n) ?? []).at(-1);
const opts = (p: Parsed, ...names: string[]) => names.flatMap((n) => p.opts.get(n) ?? []);

/** The clouds.yaml check: an unknown OS_CLOUD is the first thing a misconfigured run hits. */
function checkCloud(env: NodeEnv, p: Parsed): void {
  const cloud = opt(p, '--os-cloud') ?? process.env.OS_CLOUD;
  if (!cloud) fail('Missing value auth-url required for auth plugin password', 1);
  const clouds = readTextOr(env.node.clouds, '');
  if (!new RegExp(`^  ${cloud.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\s*$`, 'm').test(clouds))
    fail(`Cloud ${cloud} was not found.`, 1);
}

/** cliff's output: JSON indented by 2, or a left-aligned table. */
function output(p: Parsed, columns: string[], rows: Array<Record<string, unknown>>): void {
  const wanted = opts(p, '-c', '--column');
  const cols = wanted.length ? columns.filter((c) => wanted.includes(c)) : columns;
  const format = opt(p, '-f', '--format') ?? 'table';
  const picked = rows.map((r) => Object.fromEntries(cols.map((c) => [c, r[c] ?? null])));
  if (format === 'json') process.stdout.write(`${JSON.stringify(picked, null, 2)}\n`);
  else if (format === 'value')
    process.stdout.write(
      picked.map((r) => cols.map((c) => String(r[c] ?? '')).join(' ')).join('\n') + (picked.length ? '\n' : ''),
    );
  else if (picked.length)
    process.stdout.write(
      `${prettyTable(
        cols,
        picked.map((r) => cols.map((c) => (r[c] === null ? 'None' : String(r[c])))),
        { align: 'l' },
      )}\n`,
    );
}

function serviceView(env: NodeEnv, r: ServiceRecord): Record<string, unknown> {
  const root = stateLayout(env.stateDir).node(r.host);
  const cfg = readJsonOr<NodeConfig | undefined>(nodeLayout(root).config, undefined);
  let up = false;
  let updated = r.lastSeen;
  if (cfg?.virtual && cfg.units.includes(r.unit)) {
    // A virtual compute of the scale lab (lab/fleet.ts) reports while its process lives, from
    // its heartbeat's time on (its start plus the node's heartbeatMs); once stopped, its record
    // keeps the time it stopped.
    const nodeEnvOf = { node: nodeLayout(root) };
    const hb = readHeartbeat(nodeEnvOf, r.unit);
    const file = readUnitFile(nodeEnvOf, r.unit) as (UnitFile & { stoppedAt?: string }) | undefined;
    const alive = !!file && file.active && isUnitProcess(file.pid, root, r.unit);
    up = alive && !!hb && hb.pid === file.pid && Date.now() >= hb.mtimeMs;
    updated = up ? novaTimestamp(new Date()) : file?.stoppedAt ? novaTimestamp(new Date(file.stoppedAt)) : r.lastSeen;
  } else if (cfg && existsSync(root) && cfg.units.includes(r.unit)) {
    const nodeEnvOf = { node: nodeLayout(root) };
    const hb = readHeartbeat(nodeEnvOf, r.unit);
    const file = readUnitFile(nodeEnvOf, r.unit);
    if (hb) updated = novaTimestamp(new Date(hb.mtimeMs));
    const fresh = !!hb && Date.now() - hb.mtimeMs <= cfg.serviceDownSeconds * 1000;
    up = !!file && file.active && isUnitProcess(file.pid, root, r.unit) && fresh;
  }
  return {
    ID: r.id,
    Binary: r.binary,
    Host: r.host,
    Zone: r.zone,
    Status: r.disabled ? 'disabled' : 'enabled',
    State: r.forcedDown ? 'down' : up ? 'up' : 'down',
    'Updated At': updated,
    'Disabled Reason': r.disabledReason,
    'Forced Down': r.forcedDown,
  };
}

/** Whether a `2.N` microversion is below `2.<minor>`. */
function microversionBelow(version: string, minor: number): boolean {
  const m = /^2\.(\d+)$/.exec(version);
  if (!m) fail(`openstack: error: argument --os-compute-api-version: invalid version ${version}`, 2);
  return Number(m[1]) < minor;
}

function computeService(env: NodeEnv, p: Parsed, verb: string): void {
  if (verb === 'list') {
    const host = opt(p, '--host');
    const binary = opt(p, '--service');
    // Before compute API 2.53 nova prints the services table's integer id, per cell (the
    // stand-in numbers each cell's rows as the lab's python3 read does); from 2.53 the uuid.
    const version = opt(p, '--os-compute-api-version');
    const integerIds = version !== undefined && microversionBelow(version, 53);
    const all = readServices(env.stateDir);
    const rows = all
      .filter((r) => (!host || r.host === host) && (!binary || r.binary === binary))
      .map((r) => {
        const id = all.filter((x) => x.cell === r.cell).indexOf(r) + 1;
        return { ...serviceView(env, r), ...(integerIds ? { ID: id } : {}) };
      });
    const cols = [
      'ID',
      'Binary',
      'Host',
      'Zone',
      'Status',
      'State',
      'Updated At',
      ...(p.flags.has('--long') ? ['Disabled Reason', 'Forced Down'] : []),
    ];
    return output(p, cols, rows);
  }
  if (verb === 'set') {
    const [host, binary] = p.words.slice(3);
    if (!host || !binary)
      fail(
        'usage: openstack compute service set [-h] [--enable | --disable] [--disable-reason <reason>] [--up | --down] <host> <service>\nopenstack compute service set: error: the following arguments are required: <host>, <service>',
        2,
      );
    const reason = opt(p, '--disable-reason');
    if (reason !== undefined && !p.flags.has('--disable'))
      fail('Cannot specify option --disable-reason without --disable specified.', 1);
    let found = false;
    updateServices(env.stateDir, (rs) =>
      rs.map((r) => {
        if (r.host !== host || r.binary !== binary) return r;
        found = true;
        const next = { ...r };
        if (p.flags.has('--disable')) Object.assign(next, { disabled: true, disabledReason: reason ?? null });
        if (p.flags.has('--enable')) Object.assign(next, { disabled: false, disabledReason: null });
        if (p.flags.has('--down')) next.forcedDown = true;
        if (p.flags.has('--up')) next.forcedDown = false;
        return next;
      }),
    );
    if (!found) fail(`Compute service ${binary} of host ${host} failed to set.`, 1);
    return;
  }
  if (verb === 'delete') {
    // As nova's DELETE /os-services/{id}: by the uuid `list` prints, refused while the host has servers.
    const ids = p.words.slice(3);
    if (!ids.length)
      fail('openstack compute service delete: error: the following arguments are required: <service>', 2);
    const servers = readJsonOr<Server[]>(cloudFiles(env.stateDir).servers, []);
    const failed: string[] = [];
    for (const id of ids) {
      updateServices(env.stateDir, (rs) => {
        const r = rs.find((x) => x.id === id);
        if (!r || (r.binary === 'nova-compute' && servers.some((sv) => sv.Host === r.host))) {
          failed.push(id);
          return rs;
        }
        return rs.filter((x) => x.id !== id);
      });
    }
    if (failed.length)
      fail(
        `${failed.map((id) => `Failed to delete compute service with ID '${id}'`).join('\n')}\n${failed.length} of ${ids.length} compute services failed to delete.`,
        1,
      );
    return;
  }
  fail(`openstack: 'compute service ${verb}' is not an openstack command. See 'openstack --help'.`, 2);
}

function serverList(env: NodeEnv, p: Parsed): void {
  const host = opt(p, '--host');
  const servers = readJsonOr<Server[]>(cloudFiles(env.stateDir).servers, []).filter((s) => !host || s.Host === host);
  output(
    p,
    ['ID', 'Name', 'Status', 'Task State', 'Host'],
    servers.map((s) => ({ Status: 'ACTIVE', ...s })),
  );
}

function endpoint(env: NodeEnv, p: Parsed, verb: string): void {
  const file = cloudFiles(env.stateDir).endpoints;
  if (verb === 'list') {
    const service = opt(p, '--service');
    const iface = opt(p, '--interface');
    const region = opt(p, '--region');
    const all = readJsonOr<Endpoint[]>(file, []);
    // openstackclient looks the region up first (identity.get_region), so an unknown one fails.
    if (region !== undefined && !all.some((e) => e.Region === region)) fail(`No Region found for ${region}`, 1);
    const rows = all.filter(
      (e) =>
        (!service || e['Service Type'] === service || e['Service Name'] === service || e.ID === service) &&
        (!iface || e.Interface === iface) &&
        (!region || e.Region === region),
    );
    return output(
      p,
      ['ID', 'Region', 'Service Name', 'Service Type', 'Enabled', 'Interface', 'URL'],
      rows as unknown as Array<Record<string, unknown>>,
    );
  }
  if (verb === 'set') {
    const id = p.words[2];
    const url = opt(p, '--url');
    if (!id) fail('openstack endpoint set: error: the following arguments are required: <endpoint-id>', 2);
    withLock(cloudFiles(env.stateDir).dir, () => {
      const eps = readJsonOr<Endpoint[]>(file, []);
      const ep = eps.find((e) => e.ID === id);
      if (!ep) fail(`No endpoint with a ID or name of '${id}' exists.`, 1);
      if (url) ep.URL = url;
      // As openstackclient's `endpoint set`: --region and --interface MOVE the endpoint.
      const region = opt(p, '--region');
      if (region) ep.Region = region;
      const iface = opt(p, '--interface');
      if (iface) ep.Interface = iface;
      writeJson(file, eps);
    });
    return;
  }
  fail(`openstack: 'endpoint ${verb}' is not an openstack command. See 'openstack --help'.`, 2);
}

export function main(argv: string[]): void {
  const env = nodeEnv();
  const p = parse(argv);
  checkCloud(env, p);
  const [a, b, c] = p.words;
  if (a === 'compute' && b === 'service') return computeService(env, p, c ?? '');
  if (a === 'server' && b === 'list') return serverList(env, p);
  if (a === 'endpoint') return endpoint(env, p, b ?? '');
  fail(`openstack: '${p.words.join(' ')}' is not an openstack command. See 'openstack --help'.`, 2);
}
