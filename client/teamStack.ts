// The team stack, natively: the components docker-compose.yml runs (PostgreSQL, the schema job,
// the Temporal server, the Web UI server, the search-attribute job) run here, detached from the
// command that starts them, on one loopback address, with their data in the state dir. The
// schema, start and search-attribute scripts and the server's config and dynamic config are the
// compose stack's own files in deploy/compose/, run by the same binaries (built from the same Go
// modules by scripts/temporal-server.sh). Where the native run must differ, it is said where it
// happens: the addresses and ports, PostgreSQL's version (Debian 12 ships 15; compose pins
// 16.10; the server's postgres12 plugin supports both), and its password (generated, in a file).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chownSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { alive, ensureSearchAttributes, frontendAnswers, logTail, portFree, temporalCliPath } from './devServer';
import { repoRoot } from './paths';

export class TeamStackError extends Error {
  override name = 'TeamStackError';
}

export interface TeamStackOptions {
  /** Holds the PostgreSQL cluster, pid files, logs and the stack's record. */
  stateDir: string;
  /** One IPv4 loopback address every component listens on. */
  ip?: string;
  /** The frontend's gRPC port; the server's other ports are laid out from it (stackPorts). */
  port?: number;
  uiPort?: number;
  pgPort?: number;
  namespace?: string;
  /** How long each component may take to answer (a cold Temporal server on two cores: ~10 s). */
  readyTimeoutMs?: number;
}

export type Component = 'postgres' | 'temporal' | 'ui';

export interface TeamStackInfo {
  address: string;
  uiUrl: string;
  namespace: string;
  /** PostgreSQL's address (the password is in passwordFile). */
  postgres: string;
  passwordFile: string;
  /** The components this call started; the others were already running. */
  started: Component[];
  alreadyRunning: boolean;
  /**
   * Attributes of common/searchAttributes.ts that deploy/compose/create-search-attributes.sh
   * did not create (and this call then did): empty unless the two lists have drifted apart.
   */
  attributesMissingFromScript: string[];
  /** Wall time of each part of this call, in ms. */
  timings: Record<string, number>;
}

export interface ComponentStatus {
  running: boolean;
  answering: boolean;
  pid?: number;
  log: string;
}

export interface TeamStackStatus {
  address?: string;
  uiUrl?: string;
  namespace?: string;
  postgres: ComponentStatus;
  temporal: ComponentStatus;
  ui: ComponentStatus;
}

interface StackRecord {
  ip: string;
  port: number;
  uiPort: number;
  pgPort: number;
  namespace: string;
}

export const TEAM_STACK_DEFAULTS = {
  ip: '127.0.0.1',
  // The ports compose publishes (7233, the UI on 8080), so clients and docs work unchanged.
  port: 7233,
  uiPort: 8080,
  // Not 5432: a system PostgreSQL may hold it, and this cluster is the stack's alone.
  pgPort: 55432,
  namespace: 'default',
} as const;

const DB_USER = 'temporal';

/**
 * The server's ports laid out from the frontend's as the image lays them out from 7233: history
 * +1, matching +2, worker +6, HTTP +10, and each service's membership port 300 below its gRPC.
 */
export function stackPorts(port: number) {
  return {
    frontend: port,
    history: port + 1,
    matching: port + 2,
    worker: port + 6,
    http: port + 10,
    frontendMembership: port - 300,
    historyMembership: port + 1 - 300,
    matchingMembership: port + 2 - 300,
    workerMembership: port + 6 - 300,
  };
}

const paths = (stateDir: string) => {
  const dir = resolve(stateDir);
  return {
    dir,
    record: join(dir, 'stack.json'),
    log: join(dir, 'stack.log'),
    password: join(dir, 'postgres.password'),
    pgDir: join(dir, 'postgres'),
    pgData: join(dir, 'postgres', 'data'),
    pgLog: join(dir, 'postgres', 'postgres.log'),
    temporalPid: join(dir, 'temporal.pid'),
    temporalLog: join(dir, 'temporal.log'),
    uiPid: join(dir, 'ui.pid'),
    uiLog: join(dir, 'ui.log'),
    uiConfig: join(dir, 'ui-config'),
  };
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Binaries

export interface StackBinaries {
  temporalServer: string;
  sqlTool: string;
  uiServer: string;
  uiConfig: string;
}

let binaries: StackBinaries | undefined;

/** The server, SQL tool and UI server, built into the versioned cache on first use. */
export async function teamStackBinaries(): Promise<StackBinaries> {
  if (binaries) return binaries;
  const script = join(repoRoot(), 'scripts', 'temporal-server.sh');
  // stderr passes through: a cold build takes minutes and should not look like a hang.
  const { code, stdout } = await run('bash', [script], { stdio: 'inherit-stderr' });
  if (code !== 0) throw new TeamStackError(`${script} failed (exit ${code}); its messages are above`);
  const got = new Map(
    stdout
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
  );
  const pick = (k: string) => {
    const p = got.get(k);
    if (!p || !existsSync(p))
      throw new TeamStackError(`${script} did not print an existing ${k} path (got "${stdout.trim()}")`);
    return p;
  };
  return (binaries = {
    temporalServer: pick('temporal-server'),
    sqlTool: pick('temporal-sql-tool'),
    uiServer: pick('ui-server'),
    uiConfig: pick('ui-config'),
  });
}

interface PgTools {
  bin: string;
  version: string;
}

/** initdb and pg_ctl: Debian keeps them in /usr/lib/postgresql/<major>/bin, off PATH. */
function pgTools(): PgTools {
  const fromEnv = process.env.NOVA_UPGRADE_PG_BINDIR;
  const candidates: string[] = fromEnv ? [fromEnv] : [];
  if (!fromEnv && existsSync('/usr/lib/postgresql')) {
    const majors = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...majors.map((v) => join('/usr/lib/postgresql', v, 'bin')));
  }
  if (!fromEnv) candidates.push(...(process.env.PATH ?? '').split(':').filter(Boolean));
  const bin = candidates.find((d) => existsSync(join(d, 'pg_ctl')) && existsSync(join(d, 'initdb')));
  if (!bin) {
    throw new TeamStackError(
      fromEnv
        ? `NOVA_UPGRADE_PG_BINDIR=${fromEnv} holds no pg_ctl and initdb`
        : 'PostgreSQL (initdb, pg_ctl) was not found: install postgresql-15 (scripts/install.sh does) or set NOVA_UPGRADE_PG_BINDIR',
    );
  }
  return { bin, version: /postgresql\/(\d+)\//.exec(bin)?.[1] ?? 'unknown' };
}

// ---------------------------------------------------------------------------------------------
// Running things

interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  uid?: number;
  gid?: number;
  timeoutMs?: number;
  /** Let the child's stderr reach ours (a long build) instead of collecting it. */
  stdio?: 'collect' | 'inherit-stderr';
}

/**
 * A command to completion, in its own session so that a Ctrl-C of the CLI reaches neither it nor
 * a daemon it leaves behind (pg_ctl's postmaster).
 */
function run(
  cmd: string,
  args: string[],
  o: RunOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, {
      detached: true,
      stdio: ['ignore', 'pipe', o.stdio === 'inherit-stderr' ? 'inherit' : 'pipe'],
      ...(o.env ? { env: o.env } : {}),
      ...(o.cwd ? { cwd: o.cwd } : {}),
      ...(o.uid !== undefined ? { uid: o.uid } : {}),
      ...(o.gid !== undefined ? { gid: o.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = o.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), o.timeoutMs) : undefined;
    child.once('error', (err) => {
      if (timer) clearTimeout(timer);
      fail(new TeamStackError(`could not run ${cmd}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      done({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** A minimal environment: the user's TEMPORAL_*, DB* or POSTGRES_* settings must not leak in. */
function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', ...extra };
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim().split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Guards against a recycled pid: the process carries this stack's dir in its environment. */
function isOurs(pid: number | undefined, dir: string): pid is number {
  if (pid === undefined || !alive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`NOVA_UPGRADE_STACK_DIR=${dir}`);
  } catch {
    return true; // no /proc (macOS): kill -0 is all we have
  }
}

async function stopPid(pid: number, graceMs: number): Promise<boolean> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return false;
  }
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await sleep(100);
  if (!alive(pid)) return false;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
  while (alive(pid)) await sleep(50);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Options

function resolveOptions(o: TeamStackOptions): StackRecord & { readyTimeoutMs: number } {
  const ip = o.ip ?? TEAM_STACK_DEFAULTS.ip;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m || m.slice(1).some((x) => Number(x) > 255)) {
    throw new TeamStackError(
      `--ip must be an IPv4 loopback address (127.x.y.z), not "${ip}": the native stack serves this machine only`,
    );
  }
  const port = o.port ?? TEAM_STACK_DEFAULTS.port;
  const uiPort = o.uiPort ?? TEAM_STACK_DEFAULTS.uiPort;
  const pgPort = o.pgPort ?? TEAM_STACK_DEFAULTS.pgPort;
  for (const [flag, v] of [
    ['--port', port],
    ['--ui-port', uiPort],
    ['--pg-port', pgPort],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 65535)
      throw new TeamStackError(`${flag} must be a port number from 1 to 65535, not "${v}"`);
  }
  const laidOut = Object.values(stackPorts(port));
  if (laidOut.some((p) => p < 1024 || p > 65535)) {
    throw new TeamStackError(
      `--port ${port} lays the server's other ports out beyond 1024–65535 (membership ports sit 300 below, HTTP 10 above); pick one from 1324 to 65525`,
    );
  }
  const clash = [uiPort, pgPort].find((p) => laidOut.includes(p)) ?? (uiPort === pgPort ? uiPort : undefined);
  if (clash !== undefined)
    throw new TeamStackError(
      `port ${clash} is used twice: --port ${port} lays out ${laidOut.join(', ')}, --ui-port is ${uiPort}, --pg-port is ${pgPort}`,
    );
  return {
    ip,
    port,
    uiPort,
    pgPort,
    namespace: o.namespace ?? TEAM_STACK_DEFAULTS.namespace,
    readyTimeoutMs: o.readyTimeoutMs ?? 90_000,
  };
}

function readRecord(stateDir: string): StackRecord | undefined {
  try {
    return JSON.parse(readFileSync(paths(stateDir).record, 'utf8')) as StackRecord;
  } catch {
    return undefined;
  }
}

async function ensurePortsFree(
  dir: string,
  ip: string,
  what: string,
  ports: Record<string, number>,
  flag: string,
): Promise<void> {
  for (const [name, p] of Object.entries(ports)) {
    if (await portFree(ip, p)) continue;
    const temporal = name === 'frontend' && (await frontendAnswers(`${ip}:${p}`, 'temporal-system', 2_000));
    throw new TeamStackError(
      temporal
        ? `${ip}:${p} is already served by a Temporal server that the stack in ${dir} has no record of (another stack, or the dev server); stop it or pick another ${flag}`
        : `port ${ip}:${p} (${what}, ${name}) is taken by another process; free it or pick another ${flag}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

interface PgUser {
  uid: number;
  gid: number;
}

/** PostgreSQL refuses to run as root; as root we run it as the postgres user the package made. */
function pgUser(): PgUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line)
    throw new TeamStackError(
      'PostgreSQL refuses to run as root and there is no postgres user to run it as; install postgresql-15 (scripts/install.sh does)',
    );
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** The postgres user must be able to walk down to its directory; say which directory stops it. */
function checkReachable(dir: string, u: PgUser): void {
  for (let d = dirname(dir); ; d = dirname(d)) {
    // Not there yet: created by this start, with mode 0755 (checked again once it exists).
    if (!existsSync(d)) continue;
    const st = statSync(d);
    const ok = st.uid === u.uid ? st.mode & 0o100 : st.gid === u.gid ? st.mode & 0o010 : st.mode & 0o001;
    if (!ok) {
      throw new TeamStackError(
        `PostgreSQL runs as the postgres user (it refuses root), which cannot enter ${d} on the way to ${dir}; let it pass (chmod o+x ${d}) or use a --state-dir it can reach`,
      );
    }
    if (d === dirname(d)) return;
  }
}

function asPg(u: PgUser | undefined, cwd: string): Pick<RunOptions, 'uid' | 'gid' | 'cwd'> {
  return u ? { uid: u.uid, gid: u.gid, cwd } : { cwd };
}

function chownTo(u: PgUser | undefined, ...files: string[]): void {
  if (u) for (const f of files) chownSync(f, u.uid, u.gid);
}

function postgresPid(stateDir: string): number | undefined {
  // postmaster.pid's first line; a stale file (after a SIGKILL) names a dead or foreign pid.
  const data = paths(stateDir).pgData;
  const pid = readPid(join(data, 'postmaster.pid'));
  if (pid === undefined || !alive(pid)) return undefined;
  try {
    // pg_ctl starts the postmaster with -D and this data dir.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(data) ? pid : undefined;
  } catch {
    return pid;
  }
}

async function pgAnswers(rec: StackRecord, tools: PgTools): Promise<boolean> {
  const r = await run(join(tools.bin, 'pg_isready'), ['-q', '-h', rec.ip, '-p', String(rec.pgPort), '-t', '2'], {
    env: baseEnv({}),
    timeoutMs: 5_000,
  });
  return r.code === 0;
}

/** Creates the cluster once: initdb into a scratch dir, our access rules, then into place. */
async function initPostgres(stateDir: string, tools: PgTools, u: PgUser | undefined): Promise<void> {
  const f = paths(stateDir);
  const scratch = `${f.pgData}.new`;
  rmSync(scratch, { recursive: true, force: true });
  if (!existsSync(f.password)) writeFileSync(f.password, `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
  const password = readFileSync(f.password, 'utf8').trim();
  const pwfile = join(f.pgDir, '.initdb-password');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  chownTo(u, pwfile);
  try {
    const r = await run(
      join(tools.bin, 'initdb'),
      ['-D', scratch, '-U', DB_USER, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C'],
      { env: baseEnv({}), ...asPg(u, f.pgDir), timeoutMs: 120_000 },
    );
    if (r.code !== 0)
      throw new TeamStackError(`initdb of ${scratch} failed (exit ${r.code}):\n${tail(r.stderr || r.stdout)}`);
  } finally {
    rmSync(pwfile, { force: true });
  }
  // TCP on loopback, with the password, is the only way in. A connection to 127.0.x.y may come
  // from 127.0.0.1 (the loopback route's source), so the rule covers the loopback net.
  const hba = join(scratch, 'pg_hba.conf');
  writeFileSync(
    hba,
    '# Written by nova-upgrade: TCP on loopback with a password (SCRAM), nothing else.\nhost all all 127.0.0.0/8 scram-sha-256\n',
  );
  appendFileSync(
    join(scratch, 'postgresql.conf'),
    "\n# nova-upgrade writes the address and port at every start.\ninclude_if_exists = 'nova-upgrade.conf'\n",
  );
  chownTo(u, hba);
  renameSync(scratch, f.pgData);
}

async function startPostgres(stateDir: string, rec: StackRecord, timeoutMs: number): Promise<void> {
  const f = paths(stateDir);
  const tools = pgTools();
  const u = pgUser();
  mkdirSync(f.pgDir, { recursive: true, mode: 0o700 });
  chownTo(u, f.pgDir);
  if (u) checkReachable(f.pgDir, u); // again, now that the whole path exists
  if (!existsSync(join(f.pgData, 'PG_VERSION'))) await initPostgres(stateDir, tools, u);
  const conf = join(f.pgData, 'nova-upgrade.conf');
  writeFileSync(
    conf,
    [
      '# Written by nova-upgrade at every start of the stack; edits here are overwritten.',
      `listen_addresses = '${rec.ip}'`,
      `port = ${rec.pgPort}`,
      "# No Unix socket: nothing but TCP on the stack's loopback address reaches this cluster.",
      "unix_socket_directories = ''",
      '',
    ].join('\n'),
  );
  chownTo(u, conf);
  const r = await run(
    join(tools.bin, 'pg_ctl'),
    ['start', '-D', f.pgData, '-l', f.pgLog, '-w', '-t', String(Math.ceil(timeoutMs / 1000)), '-s'],
    {
      env: baseEnv({ NOVA_UPGRADE_STACK_DIR: f.dir }),
      ...asPg(u, f.pgDir),
      timeoutMs: timeoutMs + 10_000,
    },
  );
  if (r.code !== 0)
    throw new TeamStackError(
      `PostgreSQL did not start on ${rec.ip}:${rec.pgPort} (pg_ctl exit ${r.code}); last log lines:\n${logTail(f.pgLog)}`,
    );
}

/** Stops PostgreSQL (fast mode: open sessions are closed, every commit is on disk). */
export async function stopPostgres(stateDir: string, mode: 'smart' | 'fast' | 'immediate' = 'fast'): Promise<boolean> {
  const f = paths(stateDir);
  if (!postgresPid(stateDir)) return false;
  const u = pgUser();
  const r = await run(join(pgTools().bin, 'pg_ctl'), ['stop', '-D', f.pgData, '-m', mode, '-w', '-t', '60', '-s'], {
    env: baseEnv({}),
    ...asPg(u, f.pgDir),
    timeoutMs: 70_000,
  });
  if (r.code !== 0)
    throw new TeamStackError(`pg_ctl stop of ${f.pgData} failed (exit ${r.code}): ${tail(r.stderr || r.stdout)}`);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Temporal server, schema and search attributes

function password(stateDir: string): string {
  return readFileSync(paths(stateDir).password, 'utf8').trim();
}

function deployScript(name: string): string {
  return join(repoRoot(), 'deploy', 'compose', name);
}

async function runScript(stateDir: string, script: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  const f = paths(stateDir);
  appendFileSync(f.log, `=== ${new Date().toISOString()} ${script}\n`);
  const r = await run('sh', [deployScript(script)], { env, cwd: f.dir, timeoutMs });
  appendFileSync(f.log, r.stdout + r.stderr);
  if (r.code !== 0)
    throw new TeamStackError(
      `deploy/compose/${script} failed (exit ${r.code}); its last lines:\n${tail(r.stdout + r.stderr)}`,
    );
}

async function setupSchema(stateDir: string, rec: StackRecord, bins: StackBinaries): Promise<void> {
  await runScript(
    stateDir,
    'setup-postgres.sh',
    baseEnv({
      PATH: `${dirname(bins.sqlTool)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      POSTGRES_SEEDS: rec.ip,
      DB_PORT: String(rec.pgPort),
      POSTGRES_USER: DB_USER,
      SQL_PASSWORD: password(stateDir),
    }),
    180_000,
  );
}

function temporalEnv(stateDir: string, rec: StackRecord, bins: StackBinaries): NodeJS.ProcessEnv {
  const p = stackPorts(rec.port);
  return baseEnv({
    PATH: `${dirname(bins.temporalServer)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    NOVA_UPGRADE_STACK_DIR: paths(stateDir).dir,
    POSTGRES_SEEDS: rec.ip,
    DB_PORT: String(rec.pgPort),
    POSTGRES_USER: DB_USER,
    POSTGRES_PWD: password(stateDir),
    BIND_ON_IP: rec.ip,
    FRONTEND_GRPC_PORT: String(p.frontend),
    FRONTEND_HTTP_PORT: String(p.http),
    FRONTEND_MEMBERSHIP_PORT: String(p.frontendMembership),
    HISTORY_GRPC_PORT: String(p.history),
    HISTORY_MEMBERSHIP_PORT: String(p.historyMembership),
    MATCHING_GRPC_PORT: String(p.matching),
    MATCHING_MEMBERSHIP_PORT: String(p.matchingMembership),
    WORKER_GRPC_PORT: String(p.worker),
    WORKER_MEMBERSHIP_PORT: String(p.workerMembership),
  });
}

function spawnDaemon(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  logFile: string,
  pidFile: string,
  cwd: string,
): { pid: number; exited: () => string | undefined } {
  appendFileSync(logFile, `=== start ${new Date().toISOString()}\n`);
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env, cwd });
  closeSync(fd);
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = signal ? `signal ${signal}` : `exit code ${code}`));
  child.once('error', (err) => (exited = err.message));
  child.unref();
  if (child.pid === undefined) throw new TeamStackError(`could not start ${cmd}`);
  writeFileSync(pidFile, `${child.pid}\n`);
  return { pid: child.pid, exited: () => exited };
}

async function startTemporal(
  stateDir: string,
  rec: StackRecord,
  bins: StackBinaries,
  timeoutMs: number,
): Promise<void> {
  const f = paths(stateDir);
  const address = `${rec.ip}:${rec.port}`;
  // `exec` in the script keeps the pid: the pid file names the server itself.
  const d = spawnDaemon(
    'sh',
    [deployScript('start-temporal.sh')],
    temporalEnv(stateDir, rec, bins),
    f.temporalLog,
    f.temporalPid,
    f.dir,
  );
  const deadline = Date.now() + timeoutMs;
  while (!(await frontendAnswers(address, 'temporal-system', 2_000))) {
    const exited = d.exited();
    if (exited) {
      rmSync(f.temporalPid, { force: true });
      throw new TeamStackError(
        `the Temporal server stopped during start-up (${exited}); last log lines:\n${logTail(f.temporalLog)}`,
      );
    }
    if (Date.now() > deadline) {
      await stopPid(d.pid, 15_000);
      rmSync(f.temporalPid, { force: true });
      throw new TeamStackError(
        `the Temporal server did not answer on ${address} within ${timeoutMs} ms; last log lines:\n${logTail(f.temporalLog)}`,
      );
    }
    await sleep(250);
  }
}

async function createSearchAttributes(stateDir: string, rec: StackRecord): Promise<string[]> {
  const address = `${rec.ip}:${rec.port}`;
  // HOME points at the stack so the CLI reads no user profile (TLS, API key, another address).
  await runScript(
    stateDir,
    'create-search-attributes.sh',
    baseEnv({
      PATH: `${dirname(temporalCliPath())}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: paths(stateDir).dir,
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: rec.namespace,
    }),
    240_000,
  );
  // The script's list is shell; the workflow's is TypeScript. Whatever the script missed is
  // created here and reported, so a drift shows instead of breaking the next upgrade's upsert.
  return ensureSearchAttributes(address, rec.namespace);
}

// ---------------------------------------------------------------------------------------------
// UI server

async function uiAnswers(url: string): Promise<boolean> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await r.arrayBuffer();
    return r.ok;
  } catch {
    return false;
  }
}

async function startUi(stateDir: string, rec: StackRecord, bins: StackBinaries, timeoutMs: number): Promise<void> {
  const f = paths(stateDir);
  mkdirSync(f.uiConfig, { recursive: true });
  // The image's config template, unchanged, and one setting it lacks: the listening address. In
  // compose the container listens on all its interfaces and only 127.0.0.1:8080 is published;
  // here the UI server itself must listen on the stack's loopback address alone.
  copyFileSync(bins.uiConfig, join(f.uiConfig, 'docker.yaml'));
  writeFileSync(
    join(f.uiConfig, 'base.yaml'),
    `# Written by nova-upgrade at every start: docker.yaml beside it is the image's own.\nhost: ${rec.ip}\n`,
  );
  const env = baseEnv({
    NOVA_UPGRADE_STACK_DIR: f.dir,
    // The variables compose gives the temporalio/ui image.
    TEMPORAL_ADDRESS: `${rec.ip}:${rec.port}`,
    TEMPORAL_DEFAULT_NAMESPACE: rec.namespace,
    TEMPORAL_NOTIFY_ON_NEW_VERSION: 'false',
    TEMPORAL_UI_PORT: String(rec.uiPort),
  });
  const d = spawnDaemon(
    bins.uiServer,
    ['--root', f.dir, '--config', 'ui-config', '--env', 'docker', 'start'],
    env,
    f.uiLog,
    f.uiPid,
    f.dir,
  );
  const url = `http://${rec.ip}:${rec.uiPort}/`;
  const deadline = Date.now() + timeoutMs;
  while (!(await uiAnswers(url))) {
    const exited = d.exited();
    if (exited) {
      rmSync(f.uiPid, { force: true });
      throw new TeamStackError(
        `the UI server stopped during start-up (${exited}); last log lines:\n${logTail(f.uiLog)}`,
      );
    }
    if (Date.now() > deadline) {
      await stopPid(d.pid, 5_000);
      rmSync(f.uiPid, { force: true });
      throw new TeamStackError(
        `the UI server did not answer on ${url} within ${timeoutMs} ms; last log lines:\n${logTail(f.uiLog)}`,
      );
    }
    await sleep(200);
  }
}

// ---------------------------------------------------------------------------------------------
// The stack

function running(stateDir: string): Record<Component, number | undefined> {
  const f = paths(stateDir);
  const pid = (file: string) => {
    const p = readPid(file);
    return isOurs(p, f.dir) ? p : undefined;
  };
  return { postgres: postgresPid(stateDir), temporal: pid(f.temporalPid), ui: pid(f.uiPid) };
}

/**
 * Starts whatever part of the stack is not running (all of it the first time), in compose's
 * order: PostgreSQL, the schema, the server, the search attributes, the UI. A component that
 * runs is kept, so a second start finds the stack running and a start after a crash brings back
 * only what died.
 */
export async function startTeamStack(opts: TeamStackOptions): Promise<TeamStackInfo> {
  const o = resolveOptions(opts);
  const rec: StackRecord = { ip: o.ip, port: o.port, uiPort: o.uiPort, pgPort: o.pgPort, namespace: o.namespace };
  const f = paths(opts.stateDir);
  const timings: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      timings[name] = Date.now() - t0;
    }
  };

  // Every check before the first change: bad input leaves the machine as it was.
  const up = running(opts.stateDir);
  const prev = readRecord(opts.stateDir);
  if (prev && Object.values(up).some((p) => p !== undefined)) {
    for (const k of ['ip', 'port', 'uiPort', 'pgPort', 'namespace'] as const) {
      if (prev[k] !== rec[k]) {
        const flag = { ip: '--ip', port: '--port', uiPort: '--ui-port', pgPort: '--pg-port', namespace: '--namespace' }[
          k
        ];
        throw new TeamStackError(
          `the stack in ${f.dir} runs with ${flag} ${prev[k]}, not ${rec[k]}; stop it first ("nova-upgrade server stop --stack postgres") to change it`,
        );
      }
    }
  }
  if (up.postgres === undefined) {
    pgTools();
    const u = pgUser();
    if (u) checkReachable(f.pgDir, u);
    await ensurePortsFree(f.dir, rec.ip, 'PostgreSQL', { postgres: rec.pgPort }, '--pg-port');
  }
  if (up.temporal === undefined)
    await ensurePortsFree(f.dir, rec.ip, 'Temporal server', stackPorts(rec.port), '--port');
  if (up.ui === undefined) await ensurePortsFree(f.dir, rec.ip, 'UI server', { ui: rec.uiPort }, '--ui-port');
  const bins = await timed('binaries', () => teamStackBinaries());

  mkdirSync(f.dir, { recursive: true, mode: 0o755 });
  writeFileSync(f.record, `${JSON.stringify(rec, null, 2)}\n`);
  const started: Component[] = [];
  if (up.postgres === undefined) {
    await timed('postgres', () => startPostgres(opts.stateDir, rec, o.readyTimeoutMs));
    started.push('postgres');
  }
  let attributesMissingFromScript: string[] = [];
  if (up.temporal === undefined) {
    await timed('schema', () => setupSchema(opts.stateDir, rec, bins));
    await timed('temporal', () => startTemporal(opts.stateDir, rec, bins, o.readyTimeoutMs));
    attributesMissingFromScript = await timed('searchAttributes', () => createSearchAttributes(opts.stateDir, rec));
    started.push('temporal');
  } else {
    const address = `${rec.ip}:${rec.port}`;
    // Just after PostgreSQL comes back, the server refuses calls for a moment (its connection
    // pool refreshes at most once a second; measured: answering again ~1 s after PostgreSQL).
    const deadline = Date.now() + o.readyTimeoutMs;
    while (!(await frontendAnswers(address, 'temporal-system', 5_000))) {
      if (Date.now() > deadline) {
        throw new TeamStackError(
          `the stack's Temporal server (pid ${up.temporal}) runs but ${address} has not answered for ${o.readyTimeoutMs} ms; see ${f.temporalLog} or stop the stack`,
        );
      }
      await sleep(500);
    }
    attributesMissingFromScript = await timed('searchAttributes', () => ensureSearchAttributes(address, rec.namespace));
  }
  if (up.ui === undefined) {
    await timed('ui', () => startUi(opts.stateDir, rec, bins, o.readyTimeoutMs));
    started.push('ui');
  }
  return {
    address: `${rec.ip}:${rec.port}`,
    uiUrl: `http://${rec.ip}:${rec.uiPort}`,
    namespace: rec.namespace,
    postgres: `${rec.ip}:${rec.pgPort}`,
    passwordFile: f.password,
    started,
    alreadyRunning: started.length === 0,
    attributesMissingFromScript,
    timings,
  };
}

export interface TeamStackStopResult {
  stopped: Component[];
  /** Needed a SIGKILL after the grace period. */
  killed: Component[];
}

/** Stops the UI, then the server, then PostgreSQL (fast mode); the data stays. */
export async function stopTeamStack(stateDir: string, graceMs = 20_000): Promise<TeamStackStopResult> {
  const f = paths(stateDir);
  const up = running(stateDir);
  const stopped: Component[] = [];
  const killed: Component[] = [];
  for (const [c, pidFile] of [
    ['ui', f.uiPid],
    ['temporal', f.temporalPid],
  ] as const) {
    const pid = up[c];
    if (pid !== undefined) {
      if (await stopPid(pid, graceMs)) killed.push(c);
      stopped.push(c);
    }
    rmSync(pidFile, { force: true });
  }
  if (await stopPostgres(stateDir)) stopped.push('postgres');
  return { stopped, killed };
}

export async function teamStackStatus(stateDir: string): Promise<TeamStackStatus> {
  const f = paths(stateDir);
  const rec = readRecord(stateDir);
  const up = running(stateDir);
  const status = (pid: number | undefined, log: string, answering: boolean): ComponentStatus => ({
    running: pid !== undefined,
    answering,
    ...(pid !== undefined ? { pid } : {}),
    log,
  });
  if (!rec)
    return {
      postgres: status(undefined, f.pgLog, false),
      temporal: status(undefined, f.temporalLog, false),
      ui: status(undefined, f.uiLog, false),
    };
  const address = `${rec.ip}:${rec.port}`;
  const uiUrl = `http://${rec.ip}:${rec.uiPort}`;
  const [pg, temporal, ui] = await Promise.all([
    up.postgres !== undefined ? pgAnswers(rec, pgTools()) : false,
    up.temporal !== undefined ? frontendAnswers(address, rec.namespace) : false,
    up.ui !== undefined ? uiAnswers(`${uiUrl}/`) : false,
  ]);
  return {
    address,
    uiUrl,
    namespace: rec.namespace,
    postgres: status(up.postgres, f.pgLog, pg),
    temporal: status(up.temporal, f.temporalLog, temporal),
    ui: status(up.ui, f.uiLog, ui),
  };
}
