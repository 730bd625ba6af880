// systemctl for the lab's devstack@ units: start, stop, restart, show, kill, is-active and
// status, with systemd's output shapes and exit codes. Like systemd, start returns once the
// service is up (devstack's units are Type=notify) and stop once the process is gone.
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { codeVersion, fail, logEvent, nodeEnv, readTextOr, sleepSync, withLock, writeJson, type NodeEnv } from './env';
import { NOVA_UNITS } from './layout';
import { startRealUnit, stopRealUnit } from './realUnits';
import { isUnitProcess, monotonicMicros, normalizeUnit, readHeartbeat, readUnitFile, unitStatus } from './units';

const START_TIMEOUT_MS = 15_000;

function stopTimeoutMs(env: NodeEnv, unit: string): number {
  // TimeoutStopSec must outlast nova-api's own drain, or systemd would cut it short.
  return unit === NOVA_UNITS.api ? (env.config.apiMercySeconds + 5) * 1000 : 10_000;
}

function notFound(verb: string, unit: string): never {
  return fail(`Failed to ${verb} ${unit}.service: Unit ${unit}.service not found.`, 5);
}

export function startUnit(env: NodeEnv, unit: string, via = 'start'): void {
  if (unitStatus(env, unit).activeState === 'active') return;
  const real = env.config.real?.units[unit];
  if (real) return startRealUnit(env, unit, real, via);
  const log = openSync(env.node.unitLog(unit), 'a');
  const child = spawn(process.execPath, [join(__dirname, 'service.js'), env.root, unit], {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, NOVA_LAB_UNIT: unit },
  });
  closeSync(log);
  const pid = child.pid!;
  const startedMonotonic = monotonicMicros();
  writeJson(env.node.unitState(unit), { pid, startedMonotonic, active: true });
  child.unref();
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const hb = readHeartbeat(env, unit);
    if (hb && hb.pid === pid) {
      logEvent(env, 'start', unit, { pid, version: hb.version, via });
      return;
    }
    if (!isUnitProcess(pid, env.root, unit) || Date.now() > deadline) {
      if (isUnitProcess(pid, env.root, unit)) process.kill(pid, 'SIGKILL');
      logEvent(env, 'failed', unit, { pid, version: codeVersion(env), via });
      fail(
        `Job for ${unit}.service failed because the control process exited with error code.\nSee "systemctl status ${unit}.service" and "journalctl -xeu ${unit}.service" for details.`,
        1,
      );
    }
    sleepSync(20);
  }
}

export function stopUnit(env: NodeEnv, unit: string, via = 'stop', timeoutMs = stopTimeoutMs(env, unit)): void {
  const real = env.config.real?.units[unit];
  if (real) return stopRealUnit(env, unit, real, via);
  const file = readUnitFile(env, unit);
  if (!file) return;
  writeJson(env.node.unitState(unit), { ...file, active: false });
  if (!isUnitProcess(file.pid, env.root, unit)) return;
  const version = readHeartbeat(env, unit)?.version ?? 'unknown';
  process.kill(file.pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  let how = 'exited';
  while (isUnitProcess(file.pid, env.root, unit)) {
    if (Date.now() > deadline) {
      process.kill(file.pid, 'SIGKILL');
      how = 'killed';
      while (isUnitProcess(file.pid, env.root, unit)) sleepSync(10);
      break;
    }
    sleepSync(20);
  }
  logEvent(env, 'stop', unit, { pid: file.pid, version, how, via });
}

const PROPERTY_ORDER = ['MainPID', 'ExecMainStartTimestampMonotonic', 'ActiveState', 'SubState', 'LoadState', 'Id'];

function show(env: NodeEnv, unit: string, props: string[]): string {
  const s = unitStatus(env, unit);
  const values: Record<string, string> = {
    Id: `${unit}.service`,
    LoadState: s.known ? 'loaded' : 'not-found',
    MainPID: String(s.mainPid),
    ActiveState: s.activeState,
    SubState: s.subState,
    ExecMainStartTimestampMonotonic: s.startedMonotonic,
  };
  // systemd prints properties in its own order, whatever order they were asked in.
  const wanted = props.length ? PROPERTY_ORDER.filter((p) => props.includes(p)) : PROPERTY_ORDER;
  return wanted.map((p) => `${p}=${values[p]}\n`).join('');
}

function status(env: NodeEnv, unit: string, lines: number): number {
  const s = unitStatus(env, unit);
  if (!s.known) {
    process.stdout.write(`Unit ${unit}.service could not be found.\n`);
    return 4;
  }
  const hb = readHeartbeat(env, unit);
  const dot = s.activeState === 'active' ? '●' : s.activeState === 'failed' ? '×' : '○';
  const out = [
    `${dot} ${unit}.service - Devstack ${unit}.service`,
    `     Loaded: loaded (/etc/systemd/system/${unit}.service; enabled; preset: enabled)`,
    `     Active: ${s.activeState} (${s.subState})`,
  ];
  if (s.mainPid) out.push(`   Main PID: ${s.mainPid} (node)`, `    Version: ${hb?.version ?? 'unknown'}`);
  const log = readTextOr(env.node.unitLog(unit), '').split('\n').filter(Boolean).slice(-lines);
  process.stdout.write(`${out.join('\n')}\n${log.length ? `\n${log.join('\n')}\n` : ''}`);
  return s.activeState === 'active' ? 0 : 3;
}

export function main(argv: string[]): void {
  const env = nodeEnv();
  const props: string[] = [];
  const units: string[] = [];
  let signal = 'SIGTERM';
  let lines = 10;
  let verb: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => (a.includes('=') ? a.slice(a.indexOf('=') + 1) : (argv[++i] ?? ''));
    if (a.startsWith('--property') || a === '-p') props.push(...value().split(','));
    else if (a.startsWith('--signal') || a === '-s') signal = value();
    else if (a.startsWith('--kill-who'))
      value(); // one process per lab unit: main and all are the same
    else if (a === '-n' || a.startsWith('--lines')) lines = Number(value()) || 10;
    else if (a.startsWith('-'))
      continue; // --no-pager, --quiet, -l: no effect here
    else if (!verb) verb = a;
    else units.push(normalizeUnit(a));
  }
  if (!verb) fail('systemctl: this lab stand-in needs a verb (start, stop, restart, show, kill, is-active, status)');
  if (!units.length) fail(`Too few arguments.`, 1);

  let code = 0;
  // One systemctl at a time per unit, as systemd queues jobs: a retried restart racing the
  // first one must not leave two processes behind.
  const serialized = (unit: string, fn: () => void) => withLock(join(env.node.run, 'locks', unit), fn, 120_000);
  for (const unit of units) {
    const known = env.config.units.includes(unit);
    switch (verb) {
      case 'start':
        if (!known) notFound('start', unit);
        serialized(unit, () => startUnit(env, unit));
        break;
      case 'stop':
        if (!known) notFound('stop', unit);
        serialized(unit, () => stopUnit(env, unit));
        break;
      case 'restart':
        if (!known) notFound('restart', unit);
        serialized(unit, () => {
          stopUnit(env, unit, 'restart');
          startUnit(env, unit, 'restart');
        });
        break;
      case 'show':
        process.stdout.write(show(env, unit, props));
        break;
      case 'is-active': {
        const s = unitStatus(env, unit);
        process.stdout.write(`${s.activeState}\n`);
        if (s.activeState !== 'active') code = 3;
        break;
      }
      case 'status':
        code = Math.max(code, status(env, unit, lines));
        break;
      case 'kill': {
        if (!known) notFound('kill', unit);
        const s = unitStatus(env, unit);
        // With no process to signal systemd says nothing and succeeds for main; so do we.
        if (s.mainPid)
          process.kill(
            s.mainPid,
            signal.startsWith('SIG') ? (signal as NodeJS.Signals) : (`SIG${signal}` as NodeJS.Signals),
          );
        break;
      }
      default:
        fail(`Unknown command verb '${verb}'.`, 1);
    }
  }
  process.exitCode = code;
}
