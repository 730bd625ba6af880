// Parsers for the two views of a server HAProxy 2.6 gives on its runtime API. Columns are found
// by name, never by position: the column set grows between releases.
//
// Measured on 2.6.12 (server configured `weight 37`, `check inter 200ms`, rise 2, fall 3):
//   state         show stat status / weight / uweight   show servers state admin / uweight / iweight
//   ready, UP     UP       37  37                       0  37 37
//   drain         DRAIN    37  37                       8  37 37   (weight column keeps 37)
//   drain + down  DOWN     37  37                       8          (status no longer says DRAIN)
//   maint         MAINT    37  37                       1  37 37   (maint after drain clears 0x08)
//   weight 0      UP        0   0                       0   0 37   (iweight keeps the config's)
// While health is still rising (fresh start, `state ready`) status carries the count:
// "UP 1/3", "DRAIN 1/3". So "is it drained" is read from srv_admin_state bits and srv_uweight,
// never from status.
import { ApplicationFailure } from '@temporalio/common';
import type { DrainMode } from '../../common/haproxy';

/** srv_admin_state bits (src/server.h): forced by the runtime API, not inherited or configured. */
export const SRV_ADMF_FMAINT = 0x01;
export const SRV_ADMF_FDRAIN = 0x08;

/** check_status values that mean the last health check passed. */
export const CHECK_PASSED = new Set(['L4OK', 'L6OK', 'L7OK', 'L7OKC']);

function unexpected(what: string, text: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'HaproxyUnexpectedOutput',
    message: `${what}; HAProxy answered: ${JSON.stringify(text.slice(0, 300))}`,
    nonRetryable: true,
  });
}

export type Row = Record<string, string>;

/** `show stat` CSV: a `# pxname,svname,...` header, one row per proxy and server. */
export function parseShowStat(text: string): Row[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines[0];
  if (!header?.startsWith('# ')) throw unexpected('`show stat` had no "# " header line', text);
  const names = header.slice(2).split(',');
  return lines.slice(1).map((line) => {
    const cells = line.split(',');
    return Object.fromEntries(names.map((n, i) => [n, cells[i] ?? '']));
  });
}

export interface ServerStat {
  backend: string;
  server: string;
  /** UP, "UP 1/3" (rising after `state ready`), "UP 2/3" (failing), DOWN, "DOWN 1/2", DRAIN, MAINT, "no check". */
  status: string;
  /** Effective weight; 0 when drained by weight. Unchanged by `state drain`. */
  weight: number;
  scur: number;
  qcur: number;
  wretr: number;
  wredis: number;
  econ: number;
  eresp: number;
  /** Empty while in maintenance (no checks run). Without the "* " HAProxy prefixes while a check runs. */
  checkStatus: string;
  /** A check is running right now: HAProxy shows check_status as "* L7OK" (and check_code 0) meanwhile. */
  checkRunning: boolean;
  /** Duration of the last completed check in ms; -1 when HAProxy does not say. */
  checkDuration: number;
  checkCode: number;
  /** check_health, check_rise, check_fall: the health counter runs 0 .. rise+fall-1; -1 when absent. */
  checkHealth: number;
  checkRise: number;
  checkFall: number;
  /** Checks that failed while the server was up, and UP to DOWN transitions: both only ever grow. */
  chkfail: number;
  chkdown: number;
  /** Sessions ever sent to the server (only ever grows): a new one since a reading shows here. */
  stot: number;
  lastchgSeconds: number;
  /** Idle pooled connections to the server: scur 0 does not mean these are closed. */
  idleConnections: number;
}

const num = (row: Row, col: string): number => {
  const v = row[col];
  return v === undefined || v === '' ? 0 : Number(v);
};

const orMinus1 = (row: Row, col: string): number => {
  const v = row[col];
  return v === undefined || v === '' ? -1 : Number(v);
};

const REQUIRED_STAT_COLUMNS = [
  'pxname',
  'svname',
  'status',
  'weight',
  'scur',
  'qcur',
  'stot',
  'wretr',
  'wredis',
  'econ',
  'eresp',
  'check_status',
  'lastchg',
];

/** Server rows of one backend (FRONTEND/BACKEND aggregate rows left out), keyed by server name. */
export function serverStats(text: string, backend: string): Map<string, ServerStat> {
  const rows = parseShowStat(text);
  const missing = REQUIRED_STAT_COLUMNS.filter((c) => rows[0] && !(c in rows[0]));
  if (missing.length) throw unexpected(`\`show stat\` lacks column(s) ${missing.join(', ')}`, text);
  const out = new Map<string, ServerStat>();
  for (const r of rows) {
    if (r.pxname !== backend || r.svname === 'FRONTEND' || r.svname === 'BACKEND') continue;
    out.set(r.svname!, {
      backend,
      server: r.svname!,
      status: r.status!,
      weight: num(r, 'weight'),
      scur: num(r, 'scur'),
      qcur: num(r, 'qcur'),
      wretr: num(r, 'wretr'),
      wredis: num(r, 'wredis'),
      econ: num(r, 'econ'),
      eresp: num(r, 'eresp'),
      checkStatus: (r.check_status ?? '').replace(/^\* /, ''),
      checkRunning: (r.check_status ?? '').startsWith('* '),
      checkDuration: orMinus1(r, 'check_duration'),
      checkCode: orMinus1(r, 'check_code'),
      checkHealth: orMinus1(r, 'check_health'),
      checkRise: orMinus1(r, 'check_rise'),
      checkFall: orMinus1(r, 'check_fall'),
      chkfail: num(r, 'chkfail'),
      chkdown: num(r, 'chkdown'),
      stot: num(r, 'stot'),
      lastchgSeconds: num(r, 'lastchg'),
      idleConnections: num(r, 'idle_conn_cur'),
    });
  }
  return out;
}

export interface ServerState {
  backend: string;
  server: string;
  opState: number;
  adminState: number;
  /** Weight set by the runtime API (or the config's until changed); 0 after `weight 0`. */
  uweight: number;
  /** Weight from the config file; no runtime command changes it. */
  iweight: number;
  forcedMaint: boolean;
  forcedDrain: boolean;
}

const REQUIRED_STATE_FIELDS = ['be_name', 'srv_name', 'srv_op_state', 'srv_admin_state', 'srv_uweight', 'srv_iweight'];

/** `show servers state [<backend>]`: a version line ("1"), a `# be_id be_name ...` header, rows. */
export function parseServersState(text: string): ServerState[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines[0]?.trim() !== '1') throw unexpected('`show servers state` did not start with format version 1', text);
  const header = lines[1];
  if (!header?.startsWith('# ')) throw unexpected('`show servers state` had no "# " header line', text);
  const names = header.slice(2).trim().split(/\s+/);
  const missing = REQUIRED_STATE_FIELDS.filter((f) => !names.includes(f));
  if (missing.length) throw unexpected(`\`show servers state\` lacks field(s) ${missing.join(', ')}`, text);
  return lines.slice(2).map((line) => {
    const cells = line.trim().split(/\s+/);
    const f = (name: string) => cells[names.indexOf(name)] ?? '';
    const adminState = Number(f('srv_admin_state'));
    return {
      backend: f('be_name'),
      server: f('srv_name'),
      opState: Number(f('srv_op_state')),
      adminState,
      uweight: Number(f('srv_uweight')),
      iweight: Number(f('srv_iweight')),
      forcedMaint: (adminState & SRV_ADMF_FMAINT) !== 0,
      forcedDrain: (adminState & SRV_ADMF_FDRAIN) !== 0,
    };
  });
}

/** How the server is kept from new traffic right now, if it is. Maintenance is the strongest. */
export function drainedBy(s: ServerState): 'maint' | 'drain' | 'weight' | undefined {
  if (s.forcedMaint) return 'maint';
  if (s.forcedDrain) return 'drain';
  if (s.uweight === 0) return 'weight';
  return undefined;
}

/**
 * Whether the server already gets no new traffic in a way that satisfies `mode`: `disable`
 * asks for maintenance (not even persistence-cookie requests); weight 0 and drain are
 * equivalent to each other and both weaker than maintenance.
 */
export function satisfiesDrain(s: ServerState, mode: DrainMode): boolean {
  const by = drainedBy(s);
  if (mode === 'disable') return by === 'maint';
  return by !== undefined;
}
