// A real HAProxy for tests and for the lab. It runs in master-worker mode, daemonized, so it
// outlives whoever started it (a vitest fork, `lab up`), and a reload is a SIGUSR2 to a master
// whose pid never changes. The caller supplies the whole config; nothing here knows about nova.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminCommand } from './haproxySocket';

export const HAPROXY_BIN = '/usr/sbin/haproxy';

export interface HaproxyOptions {
  /** Holds haproxy.cfg, the pid file, the master CLI socket and haproxy.log; created if missing. */
  dir: string;
  config: string;
}

export interface HaproxyHandle {
  dir: string;
  configPath: string;
  pidFile: string;
  /** The master's pid: stable across reloads. */
  pid: number;
  /** Master CLI (`show proc`, `@1 show stat`); not the admin stats socket, which the config declares. */
  masterSocket: string;
}

const paths = (dir: string) => ({
  configPath: join(dir, 'haproxy.cfg'),
  pidFile: join(dir, 'haproxy.pid'),
  masterSocket: join(dir, 'master.sock'),
  log: join(dir, 'haproxy.log'),
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function run(args: string[], logPath?: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    // A daemonizing haproxy's master keeps stderr open for good, so a pipe would never reach
    // EOF; the start goes to a log file and only `exit` is awaited.
    const fd = logPath ? openSync(logPath, 'a') : undefined;
    const child = spawn(HAPROXY_BIN, args, {
      stdio: fd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', fd, fd],
    });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once(fd === undefined ? 'close' : 'exit', (code) => {
      if (fd !== undefined) closeSync(fd);
      resolve({ code, output });
    });
  });
}

async function validate(configPath: string): Promise<void> {
  const { code, output } = await run(['-c', '-f', configPath]);
  if (code !== 0) throw new Error(`haproxy -c refused ${configPath}:\n${output.trim()}`);
}

function alive(pid: number): boolean {
  try {
    // A master whose parent does not reap it lingers as a zombie; it serves nothing.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    // A recycled pid must not pass for our haproxy.
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'haproxy';
  } catch {
    return false;
  }
}

/** The running master's pid, or undefined when none is alive. */
export function haproxyPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(paths(dir).pidFile, 'utf8').trim().split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** One command on the master CLI; the master closes the connection after answering. */
export function masterCommand(dir: string, command: string, timeoutMs = 2000): Promise<string> {
  return adminCommand(paths(dir).masterSocket, command, timeoutMs);
}

interface ProcState {
  reloads: number;
  failed: number;
  workers: number[];
}

async function procState(dir: string): Promise<ProcState | undefined> {
  try {
    const out = await masterCommand(dir, 'show proc');
    // 2.6: "<pid> master <reloads> [failed: <n>] <uptime> <version>", then "<pid> worker ...".
    const master = /^\d+\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]/m.exec(out);
    if (!master) return undefined;
    const workers = [...out.matchAll(/^(\d+)\s+worker\s+(\d+)/gm)].filter((m) => m[2] === '0').map((m) => Number(m[1]));
    return { reloads: Number(master[1]), failed: Number(master[2]), workers };
  } catch {
    return undefined;
  }
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await sleep(25);
  }
}

function handle(dir: string, pid: number): HaproxyHandle {
  const p = paths(dir);
  return { dir, configPath: p.configPath, pidFile: p.pidFile, pid, masterSocket: p.masterSocket };
}

/**
 * Starts HAProxy on `config`, or reuses the one already running in `dir`. A running one whose
 * config differs is reloaded onto the new text; a config that fails `haproxy -c` never
 * replaces the file in place, so the running HAProxy keeps a config it can reload.
 */
export async function startHaproxy(opts: HaproxyOptions): Promise<HaproxyHandle> {
  const { dir, config } = opts;
  mkdirSync(dir, { recursive: true });
  const p = paths(dir);
  const candidate = `${p.configPath}.new`;
  writeFileSync(candidate, config);
  await validate(candidate);

  const running = haproxyPid(dir);
  if (running) {
    const same = existsSync(p.configPath) && readFileSync(p.configPath, 'utf8') === config;
    renameSync(candidate, p.configPath);
    if (!same) await reloadHaproxy(dir);
    return handle(dir, running);
  }
  renameSync(candidate, p.configPath);
  rmSync(p.pidFile, { force: true });
  rmSync(p.masterSocket, { force: true });
  const { code } = await run(['-W', '-D', '-S', p.masterSocket, '-p', p.pidFile, '-f', p.configPath], p.log);
  if (code !== 0) throw new Error(`haproxy did not start (exit ${code}); see ${p.log}`);
  const pid = await waitFor(`haproxy in ${dir} did not write a live pid`, 5000, async () => haproxyPid(dir));
  // Daemon mode returns once the master forked; the worker's listeners follow a moment later.
  await waitFor(`haproxy in ${dir} started no worker`, 5000, async () =>
    (await procState(dir))?.workers.length ? true : undefined,
  );
  return handle(dir, pid);
}

/**
 * Graceful reload: the master re-reads haproxy.cfg and forks a new worker, which takes the
 * listening sockets over from the old one (seamless in master-worker mode since 2.2), so the
 * frontend never refuses a connection and the stats socket path stays usable. The old worker
 * finishes its in-flight requests. Runtime state set over the socket (drain, maint, weight)
 * does NOT survive unless the config uses server-state-file.
 */
export async function reloadHaproxy(dir: string, timeoutMs = 5000): Promise<void> {
  const pid = haproxyPid(dir);
  if (!pid) throw new Error(`no running haproxy in ${dir} to reload`);
  await validate(paths(dir).configPath);
  const before = await procState(dir);
  if (!before) throw new Error(`haproxy master CLI in ${dir} did not answer "show proc"`);
  process.kill(pid, 'SIGUSR2');
  const after = await waitFor(`haproxy in ${dir} did not finish reloading`, timeoutMs, async () => {
    const s = await procState(dir);
    return s &&
      s.reloads > before.reloads &&
      s.workers.length > 0 &&
      s.workers.every((w) => !before.workers.includes(w))
      ? s
      : undefined;
  });
  if (after.failed > before.failed) throw new Error(`haproxy in ${dir} failed to reload; see ${paths(dir).log}`);
}

/** Hard stop (SIGTERM to the master, which ends its workers); waits until it is gone. */
export async function stopHaproxy(dir: string, timeoutMs = 5000): Promise<void> {
  const pid = haproxyPid(dir);
  if (!pid) return;
  process.kill(pid, 'SIGTERM');
  await waitFor(`haproxy ${pid} in ${dir} did not exit`, timeoutMs, async () => (alive(pid) ? undefined : true));
  rmSync(paths(dir).pidFile, { force: true });
}
