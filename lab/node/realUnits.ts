// systemctl start/stop for the units of a real-nova lab node: the real programs (nova's
// services from a venv, uwsgi for the WSGI ones) started the way devstack's unit files start
// them. Each unit runs in its own process group, as systemd gives each its own cgroup, so a
// stop that times out can kill whatever the main process forked.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { fail, logEvent, sleepSync, writeJson, writeText, type NodeEnv } from './env';
import type { RealUnit } from './layout';
import { isUnitProcess, monotonicMicros, readHeartbeat, readUnitFile } from './units';

// uwsgi loads nova-api with two workers in ~6 s on an idle 2-core machine and ~20 s while
// another nova process imports, but took more than 90 s (systemd's default TimeoutStartSec)
// at load average 35-45 on this shared machine, failing `lab up`: so longer, as a slow host's
// unit would set TimeoutStartSec. 240 s, not 300: the real lab's inventory gives every remote
// command 300 s (timeouts.commandSeconds), and `systemctl restart devstack@n-api` is a stop (up
// to apiMercySeconds + 5 = 15 s) plus this start. At 300 s a slow start raced the command's own
// timeout, and the step saw a killed command instead of systemd's "Job for … failed"; at 240 s
// the unit fails first, with 45 s to spare, and the step holds on what systemd said.
const START_TIMEOUT_MS = 240_000;

/** "nova-34.0.0" → "34.0.0": the release a code link (or a venv path) names. */
export function releaseOf(link: string): string {
  let target: string;
  try {
    target = basename(readlinkSync(link));
  } catch {
    target = basename(link); // a venv used in place, such as keystone's
  }
  return target.slice(target.lastIndexOf('-') + 1);
}

function answers(url: string): boolean {
  try {
    // Any HTTP status counts: nova-api's root needs no token, keystone's and placement's may 401.
    const code = execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', url], {
      encoding: 'utf8',
    }).trim();
    return /^[1-5]\d\d$/.test(code);
  } catch {
    return false;
  }
}

export function startRealUnit(env: NodeEnv, unit: string, def: RealUnit, via: string): void {
  const log = openSync(env.node.unitLog(unit), 'a');
  const version = releaseOf(def.codeLink);
  const child = spawn(def.argv[0]!, def.argv.slice(1), {
    detached: true,
    cwd: env.root,
    stdio: ['ignore', log, log],
    env: { ...process.env, ...def.env, NOVA_LAB_UNIT: unit, NOVA_LAB_ROOT: env.root },
  });
  closeSync(log);
  const pid = child.pid!;
  child.unref();
  writeJson(env.node.unitState(unit), { pid, startedMonotonic: monotonicMicros(), active: true });
  // What the process imported at start, for `lab status` and `systemctl status`.
  writeText(env.node.heartbeat(unit), JSON.stringify({ pid, unit, version, at: new Date().toISOString() }));
  if (def.readyUrl) {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!answers(def.readyUrl)) {
      if (!isUnitProcess(pid, env.root, unit) || Date.now() > deadline) {
        killGroup(pid, 'SIGKILL');
        logEvent(env, 'failed', unit, { pid, version, via });
        fail(
          `Job for ${unit}.service failed because the control process exited with error code.\nSee "systemctl status ${unit}.service" and "journalctl -xeu ${unit}.service" for details.`,
          1,
        );
      }
      sleepSync(250);
    }
  } else {
    // Type=simple: systemd reports success once the process exists; a crash shows later.
    sleepSync(100);
  }
  logEvent(env, 'start', unit, { pid, version, via });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* the group is gone */
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function stopRealUnit(env: NodeEnv, unit: string, def: RealUnit, via: string): void {
  const file = readUnitFile(env, unit);
  if (!file) return;
  writeJson(env.node.unitState(unit), { ...file, active: false });
  if (!isUnitProcess(file.pid, env.root, unit)) {
    if (groupAlive(file.pid)) killGroup(file.pid, 'SIGKILL');
    return;
  }
  const version = readHeartbeat(env, unit)?.version ?? 'unknown';
  process.kill(file.pid, def.stopSignal);
  const deadline = Date.now() + def.stopTimeoutSeconds * 1000;
  let how = 'exited';
  while (isUnitProcess(file.pid, env.root, unit)) {
    if (Date.now() > deadline) {
      killGroup(file.pid, 'SIGKILL');
      how = 'killed';
      while (isUnitProcess(file.pid, env.root, unit)) sleepSync(10);
      break;
    }
    sleepSync(50);
  }
  // What the main process left behind (a uwsgi worker past its mercy) goes with it, as
  // systemd's final SIGKILL to the cgroup does.
  if (groupAlive(file.pid)) {
    sleepSync(200);
    killGroup(file.pid, 'SIGKILL');
  }
  logEvent(env, 'stop', unit, { pid: file.pid, version, how, via });
}
