// Manages a local Temporal dev server (the CLI's `server start-dev` on a SQLite file). It runs
// detached so it outlives the command that started it; a pid file and a small JSON record in the
// state dir let later commands find, reuse or stop it.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { SEARCH_ATTRIBUTES } from '../common/searchAttributes';
import { repoRoot } from './paths';

export type SearchAttributeSpec = (typeof SEARCH_ATTRIBUTES)[number];

export interface StartDevServerOptions {
  stateDir: string;
  ip?: string;
  port?: number;
  uiPort?: number;
  namespace?: string;
  logFile?: string;
  /** Without the Web UI; saves memory where nobody will look at it. */
  headless?: boolean;
  /** Attributes to register; the project's own list unless a test needs a different one. */
  searchAttributes?: readonly SearchAttributeSpec[];
  /** How long a cold start may take before we give up (a 2-core CI box needs a few seconds). */
  readyTimeoutMs?: number;
}

export interface DevServerInfo {
  address: string;
  uiUrl: string;
  pid: number;
  alreadyRunning: boolean;
  namespace: string;
}

export interface DevServerStatus {
  running: boolean;
  /** Running and the frontend answered a namespace lookup just now. */
  answering: boolean;
  pid?: number;
  address?: string;
  uiUrl?: string;
  namespace?: string;
  dbFile: string;
  logFile: string;
}

export interface StopResult {
  wasRunning: boolean;
  pid?: number;
  /** SIGTERM was not enough within the grace period. */
  killed: boolean;
}

interface ServerRecord {
  pid: number;
  address: string;
  uiUrl: string;
  namespace: string;
  dbFile: string;
  logFile: string;
  startedAt: string;
}

export class DevServerError extends Error {
  override name = 'DevServerError';
}

const files = (stateDir: string) => ({
  db: join(resolve(stateDir), 'temporal.sqlite'),
  pid: join(resolve(stateDir), 'temporal.pid'),
  record: join(resolve(stateDir), 'temporal.json'),
  log: join(resolve(stateDir), 'temporal.log'),
});

/**
 * Eager activity dispatch: a workflow task that schedules an activity gets the activity back in
 * its own completion's answer, when this worker has a free slot, instead of the activity going
 * through the task queue to a poller. The history is the same (ScheduleActivityTask with
 * request_eager_execution, which replay does not compare). Measured on the stand-in lab
 * (bench/steps.ts, docs/performance.md): schedule→start fell from a median of 50 ms to 0 over
 * the 59 activities one upgrade waits on one after another. The compose stack's dynamic config
 * (deploy/compose/dynamicconfig/temporal.yaml) sets the same.
 */
const DYNAMIC_CONFIG: [string, string][] = [['system.enableActivityEagerExecution', 'true']];

let cliPath: string | undefined;

/** The pinned Temporal CLI, built into the versioned cache on first use. */
export function temporalCliPath(): string {
  if (cliPath) return cliPath;
  const script = join(repoRoot(), 'scripts', 'temporal-cli.sh');
  // stderr passes through: a cold build takes minutes and should not look like a hang.
  const out = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const path = out.split('\n').pop() ?? '';
  if (!path || !existsSync(path))
    throw new DevServerError(`${script} did not print a Temporal CLI path (got "${out}")`);
  return (cliPath = path);
}

// The user's Temporal env config (TLS, API keys, another address) must not leak into commands
// aimed at our local dev server.
const CLIENT_FLAGS = ['--color', 'never', '--disable-config-file', '--disable-config-env'];

function runCli(args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((done, fail) => {
    execFile(
      temporalCliPath(),
      [...args, ...CLIENT_FLAGS],
      { timeout: timeoutMs, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err)
          fail(new DevServerError(`temporal ${args.slice(0, 3).join(' ')} failed: ${(stderr || err.message).trim()}`));
        else done(stdout);
      },
    );
  });
}

/** Whether the process exists and is not a zombie waiting to be reaped. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (macOS): kill -0 is all we have
  }
}

/** Guards against a recycled pid: the process must be a dev server on this state dir's database. */
function isOurServer(pid: number, dbFile: string): boolean {
  if (!alive(pid)) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('start-dev') && argv.includes(dbFile);
  } catch {
    return true;
  }
}

function readRecord(stateDir: string): ServerRecord | undefined {
  const f = files(stateDir);
  try {
    const rec = JSON.parse(readFileSync(f.record, 'utf8')) as ServerRecord;
    const pid = Number(readFileSync(f.pid, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? { ...rec, pid } : undefined;
  } catch {
    return undefined;
  }
}

function forgetServer(stateDir: string): void {
  const f = files(stateDir);
  rmSync(f.pid, { force: true });
  rmSync(f.record, { force: true });
}

/** True when a namespace lookup on the frontend succeeds within the time given. */
export async function frontendAnswers(address: string, namespace: string, timeoutMs = 3_000): Promise<boolean> {
  // The CLI rather than an SDK Connection: the SDK retries failed calls on timers that outlive
  // close(), and a listener that accepts TCP but never speaks HTTP/2 must simply time out.
  const secs = `${Math.max(1, Math.ceil(timeoutMs / 1000))}s`;
  try {
    await runCli(
      [
        'operator',
        'namespace',
        'describe',
        '--address',
        address,
        '--namespace',
        namespace,
        '-o',
        'json',
        '--command-timeout',
        secs,
        '--client-connect-timeout',
        secs,
      ],
      timeoutMs + 2_000,
    );
    return true;
  } catch {
    return false;
  }
}

export function portFree(ip: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const srv = createServer();
    srv.once('error', () => done(false));
    srv.listen({ host: ip, port, exclusive: true }, () => srv.close(() => done(true)));
  });
}

/** A port the kernel just handed out; used to give test servers their own ports. */
export function findFreePort(ip = '127.0.0.1'): Promise<number> {
  return new Promise((done, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen({ host: ip, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? done(addr.port) : fail(new Error('no port assigned'))));
    });
  });
}

export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export function logTail(logFile: string, lines = 15): string {
  try {
    return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `start-dev --search-attribute` only registers attributes when the namespace is first created,
 * so a reused SQLite file silently lacks any attribute added since. This fills the gap.
 * Returns the names it had to create.
 */
export async function ensureSearchAttributes(
  address: string,
  namespace: string,
  attributes: readonly SearchAttributeSpec[] = SEARCH_ATTRIBUTES,
): Promise<string[]> {
  const out = await runCli([
    'operator',
    'search-attribute',
    'list',
    '--address',
    address,
    '--namespace',
    namespace,
    '-o',
    'json',
  ]);
  const listed = JSON.parse(out) as {
    customAttributes?: Record<string, string>;
    systemAttributes?: Record<string, string>;
  };
  const existing = { ...listed.systemAttributes, ...listed.customAttributes };
  const created: string[] = [];
  for (const attr of attributes) {
    const want = `INDEXED_VALUE_TYPE_${attr.type.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`;
    const have = existing[attr.name];
    if (have === want) continue;
    if (have) {
      throw new DevServerError(
        `search attribute ${attr.name} exists in namespace ${namespace} as ${have}, not ${want}; it cannot be changed in place`,
      );
    }
    await runCli([
      'operator',
      'search-attribute',
      'create',
      '--address',
      address,
      '--namespace',
      namespace,
      '--name',
      attr.name,
      '--type',
      attr.type,
    ]);
    created.push(attr.name);
  }
  return created;
}

async function ensureNamespace(address: string, namespace: string): Promise<void> {
  if (await frontendAnswers(address, namespace)) return;
  await runCli(['operator', 'namespace', 'create', '--address', address, '--namespace', namespace]);
}

export async function startDevServer(opts: StartDevServerOptions): Promise<DevServerInfo> {
  const ip = opts.ip ?? '127.0.0.1';
  const port = opts.port ?? 7233;
  const uiPort = opts.uiPort ?? 8233;
  const namespace = opts.namespace ?? 'default';
  const attributes = opts.searchAttributes ?? SEARCH_ATTRIBUTES;
  const f = files(opts.stateDir);
  const logFile = resolve(opts.logFile ?? f.log);
  mkdirSync(resolve(opts.stateDir), { recursive: true });

  const prev = readRecord(opts.stateDir);
  if (prev && isOurServer(prev.pid, f.db)) {
    if (!(await frontendAnswers(prev.address, 'default', 10_000))) {
      throw new DevServerError(
        `the dev server of ${opts.stateDir} (pid ${prev.pid}) is running but ${prev.address} does not answer; see ${prev.logFile} or stop it with "nova-upgrade server stop"`,
      );
    }
    await ensureNamespace(prev.address, namespace);
    await ensureSearchAttributes(prev.address, namespace, attributes);
    return { address: prev.address, uiUrl: prev.uiUrl, pid: prev.pid, alreadyRunning: true, namespace };
  }
  if (prev) forgetServer(opts.stateDir); // stale: the process is gone

  // A wildcard bind is dialled on loopback: the address we hand out must be connectable.
  const dialHost = ip === '0.0.0.0' ? '127.0.0.1' : ip === '::' ? '::1' : ip;
  const address = hostPort(dialHost, port);
  for (const [what, p] of [
    ['gRPC', port],
    ['Web UI', uiPort],
  ] as const) {
    if (what === 'Web UI' && opts.headless) continue;
    if (await portFree(ip, p)) continue;
    const temporal = what === 'gRPC' && (await frontendAnswers(address, 'default', 2_000));
    throw new DevServerError(
      temporal
        ? `${address} is already served by a Temporal server that ${opts.stateDir} has no record of; use it with --address, stop it, or pick another --port`
        : `${what} port ${hostPort(ip, p)} is taken by another process that is not our Temporal dev server; free it or pick another port`,
    );
  }

  const args = ['server', 'start-dev', '--db-filename', f.db, '--ip', ip, '--port', String(port)];
  args.push(...(opts.headless ? ['--headless'] : ['--ui-port', String(uiPort)]));
  if (namespace !== 'default') args.push('--namespace', namespace);
  for (const a of attributes) args.push('--search-attribute', `${a.name}=${a.type}`);
  for (const [k, v] of DYNAMIC_CONFIG) args.push('--dynamic-config-value', `${k}=${v}`);

  const logFd = openSync(logFile, 'a');
  const child = spawn(temporalCliPath(), args, { detached: true, stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = signal ? `signal ${signal}` : `exit code ${code}`));
  child.once('error', (err) => (exited = err.message));
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new DevServerError(`could not start ${temporalCliPath()}`);
  const uiUrl = opts.headless ? '' : `http://${hostPort(dialHost, uiPort)}`;
  writeFileSync(f.pid, `${pid}\n`);
  const record: Omit<ServerRecord, 'pid'> = {
    address,
    uiUrl,
    namespace,
    dbFile: f.db,
    logFile,
    startedAt: new Date().toISOString(),
  };
  writeFileSync(f.record, `${JSON.stringify(record, null, 2)}\n`);

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  while (!(await frontendAnswers(address, namespace, 2_000))) {
    if (exited) {
      forgetServer(opts.stateDir);
      throw new DevServerError(
        `the Temporal dev server stopped during start-up (${exited}); last log lines:\n${logTail(logFile)}`,
      );
    }
    if (Date.now() > deadline) {
      await stopDevServer(opts.stateDir);
      throw new DevServerError(
        `the Temporal dev server did not answer on ${address} within ${opts.readyTimeoutMs ?? 60_000} ms; last log lines:\n${logTail(logFile)}`,
      );
    }
    await sleep(200);
  }
  await ensureSearchAttributes(address, namespace, attributes);
  return { address, uiUrl, pid, alreadyRunning: false, namespace };
}

export async function stopDevServer(stateDir: string, graceMs = 15_000): Promise<StopResult> {
  const rec = readRecord(stateDir);
  if (!rec || !isOurServer(rec.pid, files(stateDir).db)) {
    forgetServer(stateDir);
    return { wasRunning: false, killed: false };
  }
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(rec.pid, sig);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive(rec.pid) && Date.now() < deadline) await sleep(100);
  const killed = alive(rec.pid);
  if (killed) {
    signal('SIGKILL');
    while (alive(rec.pid)) await sleep(50);
  }
  forgetServer(stateDir);
  return { wasRunning: true, pid: rec.pid, killed };
}

export async function devServerStatus(stateDir: string): Promise<DevServerStatus> {
  const f = files(stateDir);
  const rec = readRecord(stateDir);
  const base = { dbFile: f.db, logFile: rec?.logFile ?? f.log };
  if (!rec || !isOurServer(rec.pid, f.db)) return { running: false, answering: false, ...base };
  const answering = await frontendAnswers(rec.address, rec.namespace);
  return {
    running: true,
    answering,
    pid: rec.pid,
    address: rec.address,
    uiUrl: rec.uiUrl,
    namespace: rec.namespace,
    ...base,
  };
}
