// The state of one lab unit as systemd would report it, derived from the unit's state file
// and the process table (never from the state file alone: a process can die behind our back).
import { readFileSync, readlinkSync } from 'node:fs';
import { readJsonOr, type NodeEnv } from './env';

export interface UnitFile {
  pid: number;
  /** CLOCK_MONOTONIC in µs at start, as systemd's ExecMainStartTimestampMonotonic. */
  startedMonotonic: string;
  /** Whether the unit is meant to run: false after `systemctl stop`. */
  active: boolean;
}

export interface UnitStatus {
  known: boolean;
  activeState: 'active' | 'inactive' | 'failed';
  subState: 'running' | 'dead' | 'failed';
  mainPid: number;
  startedMonotonic: string;
}

export interface Heartbeat {
  pid: number;
  unit: string;
  version: string;
  at: string;
}

/**
 * A zombie still answers kill(pid, 0), and PID 1 here may never reap the services a session
 * left behind, so /proc's state letter decides. The command line check guards against a pid
 * reused by something else after the lab went down.
 */
export function isUnitProcess(pid: number, root: string, unit: string): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (cmdline.includes(unit) && cmdline.includes(root)) return true;
    // A real program (nova-conductor, uwsgi) does not carry the unit on its command line; the
    // real-nova lab starts it with both in its environment instead.
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    if (environ.includes(`NOVA_LAB_UNIT=${unit}`) && environ.includes(`NOVA_LAB_ROOT=${root}`)) return true;
    // oslo.service's setproctitle overwrites both ("nova-scheduler: master process [...]"):
    // then the unit's own process group, started in the node root, is what identifies it.
    const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    return pgrp === pid && readlinkSync(`/proc/${pid}/cwd`) === root;
  } catch {
    return false;
  }
}

export function normalizeUnit(unit: string): string {
  return unit.replace(/\.service$/, '');
}

export function readUnitFile(env: Pick<NodeEnv, 'node'>, unit: string): UnitFile | undefined {
  return readJsonOr<UnitFile | undefined>(env.node.unitState(unit), undefined);
}

export function unitStatus(env: Pick<NodeEnv, 'node' | 'root' | 'config'>, unit: string): UnitStatus {
  const known = env.config.units.includes(unit);
  const file = readUnitFile(env, unit);
  if (!known || !file) return { known, activeState: 'inactive', subState: 'dead', mainPid: 0, startedMonotonic: '0' };
  if (!file.active)
    return { known, activeState: 'inactive', subState: 'dead', mainPid: 0, startedMonotonic: file.startedMonotonic };
  if (isUnitProcess(file.pid, env.root, unit))
    return {
      known,
      activeState: 'active',
      subState: 'running',
      mainPid: file.pid,
      startedMonotonic: file.startedMonotonic,
    };
  return { known, activeState: 'failed', subState: 'failed', mainPid: 0, startedMonotonic: file.startedMonotonic };
}

export function readHeartbeat(env: Pick<NodeEnv, 'node'>, unit: string): (Heartbeat & { mtimeMs: number }) | undefined {
  try {
    const path = env.node.heartbeat(unit);
    const hb = JSON.parse(readFileSync(path, 'utf8')) as Heartbeat;
    return { ...hb, mtimeMs: Date.parse(hb.at) };
  } catch {
    return undefined;
  }
}

export function monotonicMicros(): string {
  return (process.hrtime.bigint() / 1000n).toString();
}
