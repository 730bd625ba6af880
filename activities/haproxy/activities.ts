// HAProxy steps of the API rolling restart, as Temporal activities. Every LB holding the VIP
// (or able to take it over) must agree, so each step acts on every LB in the input.
import { activityContext, backoff, pause } from '../common';
import { ApplicationFailure } from '@temporalio/common';
import type { RemoteRunner } from '../ssh/types';
import {
  checkName,
  commands,
  describeSocket,
  HaproxyRuntime,
  type CliLevel,
  type RuntimeClientOptions,
  type RuntimeCommand,
} from './runtimeApi';
import type { DrainMode, LbTarget, RecordedWeights } from '../../common/haproxy';
import {
  CHECK_PASSED,
  drainedBy,
  parseServersState,
  satisfiesDrain,
  serverStats,
  type ServerStat,
  type ServerState,
} from './stats';

export interface HaproxyDeps {
  runner: RemoteRunner;
  /** Test hook: sees every payload sent to a socket. */
  onSend?: RuntimeClientOptions['onSend'];
}

/** Configured weight per LB node, per server: what enableApiServer restores. */

export interface LbServerInput {
  lbs: LbTarget[];
  backend: string;
  server: string;
}

export interface PerLb {
  lb: string;
  alreadyDone: boolean;
  detail: string;
}

export interface StepResult {
  summary: string;
  alreadyDone: boolean;
  perLb: PerLb[];
  /**
   * Per drained server, per LB: its stot read in the same exchange as the drain (or the check
   * that found it drained). waitForNoSessions compares against it: no new session since.
   */
  sessionsAtDrain?: Record<string, Record<string, number>>;
}

export interface SessionCount {
  lb: string;
  scur: number;
  qcur: number;
  /** Sessions ever sent to the server; compared with its value when the drain took effect. */
  stot: number;
  /** Idle pooled server connections: not sessions, and not closed by draining. */
  idleConnections: number;
  status: string;
}

export interface ServerCounters {
  status: string;
  weight: number;
  scur: number;
  wretr: number;
  wredis: number;
  econ: number;
  eresp: number;
}

function heartbeat(details: unknown): void {
  activityContext()?.heartbeat(details);
}

/** Acts on every LB; one unreachable LB does not stop the others, and the retry finds them done. */
async function onEveryLb<T>(lbs: LbTarget[], fn: (lb: LbTarget) => Promise<T>): Promise<T[]> {
  if (lbs.length === 0)
    throw ApplicationFailure.create({
      type: 'HaproxyNoLoadBalancers',
      message: 'no LB nodes given',
      nonRetryable: true,
    });
  const results = await Promise.allSettled(lbs.map(fn));
  const failures = results
    .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    .map((r) => r.reason as unknown);
  if (failures.length) {
    // A non-retryable failure needs the operator whatever the other LBs said; report it first.
    throw failures.find((f) => f instanceof ApplicationFailure && f.nonRetryable) ?? failures[0];
  }
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/** Before anything is sent: a name with `;` or a newline would be a second runtime command. */
function checkNames(backend: string, servers: string[]): void {
  checkName('backend', backend);
  servers.forEach((s) => checkName('server', s));
}

function noSuchServer(lb: LbTarget, backend: string, server: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'HaproxyNoSuchServer',
    message: `HAProxy on LB ${lb.node} (${describeSocket(lb.socket)}) has no server ${server} in backend ${backend}`,
    nonRetryable: true,
    details: [{ lb: lb.node, backend, server }],
  });
}

export function createHaproxyActivities(deps: HaproxyDeps) {
  const client = (lb: LbTarget) => new HaproxyRuntime(lb, { runner: deps.runner, onSend: deps.onSend });

  async function stateOf(lb: LbTarget, backend: string): Promise<Map<string, ServerState>> {
    const text = await client(lb).one(commands.showServersState(backend));
    return new Map(parseServersState(text).map((s) => [s.server, s]));
  }

  async function oneState(lb: LbTarget, backend: string, server: string): Promise<ServerState> {
    checkNames(backend, [server]);
    const s = (await stateOf(lb, backend)).get(server);
    if (!s) throw noSuchServer(lb, backend, server);
    return s;
  }

  async function statsOf(lb: LbTarget, backend: string): Promise<Map<string, ServerStat>> {
    return serverStats(await client(lb).one(commands.showStat(backend)), backend);
  }

  async function oneStat(lb: LbTarget, backend: string, server: string): Promise<ServerStat> {
    checkNames(backend, [server]);
    const s = (await statsOf(lb, backend)).get(server);
    if (!s) throw noSuchServer(lb, backend, server);
    return s;
  }

  /**
   * Runs in a step of its own before any drain, so a drain retried after a crash never records
   * the 0 it set itself. `state drain` and `state maint` keep srv_uweight; only weight 0 loses it,
   * and then srv_iweight (the config file's weight) is the truthful answer.
   */
  async function recordServerWeights(input: {
    lbs: LbTarget[];
    backend: string;
    servers: string[];
  }): Promise<{ summary: string; weights: RecordedWeights; notes: string[] }> {
    checkNames(input.backend, input.servers);
    const notes: string[] = [];
    const per = await onEveryLb(input.lbs, async (lb) => {
      const states = await stateOf(lb, input.backend);
      const weights: Record<string, number> = {};
      for (const server of input.servers) {
        const s = states.get(server);
        if (!s) throw noSuchServer(lb, input.backend, server);
        if (s.uweight === 0) {
          weights[server] = s.iweight;
          notes.push(
            `${lb.node}: ${input.backend}/${server} is already at weight 0; recording its configured weight ${s.iweight}`,
          );
        } else {
          weights[server] = s.uweight;
          const by = drainedBy(s);
          if (by)
            notes.push(
              `${lb.node}: ${input.backend}/${server} is already drained (${by}); its weight ${s.uweight} is kept while drained`,
            );
        }
      }
      return [lb.node, weights] as const;
    });
    const weights = Object.fromEntries(per);
    const summary = `recorded weights of ${input.backend} on ${per.length} LB(s): ${per
      .map(
        ([lb, w]) =>
          `${lb} ${Object.entries(w)
            .map(([s, n]) => `${s}=${n}`)
            .join(' ')}`,
      )
      .join('; ')}${notes.length ? ` (${notes.join('; ')})` : ''}`;
    return { summary, weights, notes };
  }

  /**
   * Stops new traffic to the server on every LB; the mode is the inventory's haproxy.drainMode.
   * One exchange per LB reads the state, and a second drains and reads the state and stot back:
   * HAProxy runs a connection's commands in order, so that stot is the count when the drain took
   * effect, and any session after it shows as a larger stot.
   */
  async function drainApiServer(input: LbServerInput & { mode: DrainMode }): Promise<StepResult> {
    const { backend, server, mode } = input;
    const drain = commands.drain(backend, server, mode);
    const stotAt: Record<string, number> = {};
    const perLb = await onEveryLb(input.lbs, async (lb): Promise<PerLb> => {
      const read = async (first: RuntimeCommand[]) => {
        const { answers } = await client(lb).execute([
          ...first,
          commands.showServersState(backend),
          commands.showStat(backend),
        ]);
        const state = parseServersState(answers[first.length]!.text).find((x) => x.server === server);
        const stat = serverStats(answers[first.length + 1]!.text, backend).get(server);
        if (!state || !stat) throw noSuchServer(lb, backend, server);
        return { state, stat };
      };
      checkNames(backend, [server]);
      const before = await read([]);
      if (satisfiesDrain(before.state, mode)) {
        stotAt[lb.node] = before.stat.stot;
        return { lb: lb.node, alreadyDone: true, detail: `already ${drainedBy(before.state)}` };
      }
      const after = await read([drain]);
      if (!satisfiesDrain(after.state, mode)) {
        throw ApplicationFailure.create({
          type: 'HaproxyDrainNotApplied',
          message: `on LB ${lb.node}, \`${drain.text}\` was accepted but ${backend}/${server} reads admin state ${after.state.adminState}, weight ${after.state.uweight}`,
          nonRetryable: false,
        });
      }
      stotAt[lb.node] = after.stat.stot;
      return { lb: lb.node, alreadyDone: false, detail: drain.text };
    });
    const alreadyDone = perLb.every((p) => p.alreadyDone);
    return {
      alreadyDone,
      perLb,
      sessionsAtDrain: { [server]: stotAt },
      summary: `${backend}/${server} drained (${mode}) on ${perLb.map((p) => `${p.lb}: ${p.alreadyDone ? p.detail : 'now'}`).join(', ')}`,
    };
  }

  /**
   * Drained means: no session and no queued request for the server on any LB, and no session
   * opened since the drain took effect. With `since` (each LB's stot when the drain took effect,
   * from the drain's own exchange) the counters prove it at the first reading where scur and
   * qcur are 0 and stot has not moved: nothing is on the server, and nothing came since.
   * Where they cannot (no `since`, as from a run started before it was recorded, or a session
   * did open after the drain, which with weight 0 or `state drain` HAProxy still does for
   * requests carrying the server's persistence cookie; only maintenance refuses them), the
   * settle rule holds: idle with stot unchanged for settleMs in a row, so a session that opens
   * and closes between two readings still restarts the count.
   * Not proven either way: that pooled idle keep-alive TCP connections to the server are closed
   * (see idleConnections). Neither should hurt a server that finishes in-flight requests on
   * SIGTERM, but the timeout never forces anything: it hands the decision (wait more,
   * `shutdownSessions`, abort) to the operator.
   */
  async function waitForNoSessions(
    input: LbServerInput & { settleMs: number; timeoutMs: number; pollMs: number; since?: Record<string, number> },
  ): Promise<{ summary: string; counts: SessionCount[]; waitedMs: number; provenBy: string }> {
    const { backend, server, since } = input;
    const started = Date.now();
    const delay = backoff(input.pollMs);
    let zeroSince: number | undefined;
    let prev: Map<string, number> | undefined;
    for (;;) {
      const counts = await onEveryLb(input.lbs, async (lb): Promise<SessionCount> => {
        const s = await oneStat(lb, backend, server);
        return {
          lb: lb.node,
          scur: s.scur,
          qcur: s.qcur,
          stot: s.stot,
          idleConnections: s.idleConnections,
          status: s.status,
        };
      });
      const now = Date.now();
      const idle = counts.every((c) => c.scur === 0 && c.qcur === 0);
      const newSinceDrain = since
        ? counts.map((c) => (since[c.lb] === undefined ? undefined : c.stot - since[c.lb]!))
        : undefined;
      const show = counts
        .map((c, i) => {
          const n = newSinceDrain?.[i];
          return `${c.lb} scur=${c.scur} qcur=${c.qcur}${n === undefined ? '' : ` new since drain=${n}`}`;
        })
        .join(', ');
      if (idle && newSinceDrain?.every((n) => n === 0)) {
        heartbeat({ counts, zeroForMs: 0, provenBy: 'counters' });
        return {
          summary: `${backend}/${server} has no sessions on any LB and none opened since the drain (${show})`,
          counts,
          waitedMs: now - started,
          provenBy: 'counters',
        };
      }
      const moved = prev !== undefined && counts.some((c) => prev!.get(c.lb) !== c.stot);
      zeroSince = idle && !moved ? (zeroSince ?? now) : undefined;
      prev = new Map(counts.map((c) => [c.lb, c.stot]));
      heartbeat({ counts, zeroForMs: zeroSince === undefined ? 0 : now - zeroSince });
      if (zeroSince !== undefined && now - zeroSince >= input.settleMs) {
        const why = newSinceDrain?.some((n) => n !== undefined && n > 0)
          ? 'a session opened after the drain, so'
          : 'no record of the drain, so';
        return {
          summary: `${backend}/${server} has had no sessions on any LB for ${now - zeroSince} ms (${why} it waited the settle time; ${show})`,
          counts,
          waitedMs: now - started,
          provenBy: 'settle',
        };
      }
      if (now - started >= input.timeoutMs) {
        throw ApplicationFailure.create({
          type: 'HaproxyDrainTimeout',
          message: `${backend}/${server} still has sessions after ${Math.round((now - started) / 1000)} s: ${show}; nothing was shut down`,
          nonRetryable: true,
          details: [{ backend, server, counts }],
        });
      }
      await pause(delay());
    }
  }

  /** Cuts the server's live sessions on every LB. Only on the operator's explicit choice. */
  async function shutdownSessions(input: LbServerInput): Promise<StepResult> {
    const { backend, server } = input;
    const cmd = commands.shutdownSessions(backend, server);
    const perLb = await onEveryLb(input.lbs, async (lb): Promise<PerLb> => {
      const before = await oneStat(lb, backend, server);
      await client(lb).one(cmd);
      return { lb: lb.node, alreadyDone: before.scur === 0, detail: `${before.scur} session(s) shut down` };
    });
    return {
      alreadyDone: perLb.every((p) => p.alreadyDone),
      perLb,
      summary: `shut down sessions of ${backend}/${server}: ${perLb.map((p) => `${p.lb} ${p.detail}`).join(', ')}`,
    };
  }

  /** `state ready` plus the weight recordServerWeights saw; a missing record fails, never a guess. */
  async function enableApiServer(input: LbServerInput & { weights: RecordedWeights }): Promise<StepResult> {
    const { backend, server } = input;
    const perLb = await onEveryLb(input.lbs, async (lb): Promise<PerLb> => {
      const weight = input.weights[lb.node]?.[server];
      if (weight === undefined) {
        throw ApplicationFailure.create({
          type: 'HaproxyNoRecordedWeight',
          message: `no recorded weight for ${backend}/${server} on LB ${lb.node}; refusing to guess one`,
          nonRetryable: true,
          details: [{ lb: lb.node, backend, server }],
        });
      }
      const before = await oneState(lb, backend, server);
      if (!before.forcedMaint && !before.forcedDrain && before.uweight === weight)
        return { lb: lb.node, alreadyDone: true, detail: `already ready at weight ${weight}` };
      // One connection that also reads the result; the marker after each command attributes
      // the weight answer correctly.
      const { answers } = await client(lb).execute([
        commands.setState(backend, server, 'ready'),
        commands.setWeight(backend, server, weight),
        commands.showServersState(backend),
      ]);
      const after = parseServersState(answers[2]!.text).find((x) => x.server === server);
      if (!after) throw noSuchServer(lb, backend, server);
      if (after.forcedMaint || after.forcedDrain || after.uweight !== weight) {
        throw ApplicationFailure.create({
          type: 'HaproxyEnableNotApplied',
          message: `on LB ${lb.node}, ${backend}/${server} reads admin state ${after.adminState}, weight ${after.uweight} after enabling at weight ${weight}`,
          nonRetryable: false,
        });
      }
      return { lb: lb.node, alreadyDone: false, detail: `ready at weight ${weight}` };
    });
    return {
      alreadyDone: perLb.every((p) => p.alreadyDone),
      perLb,
      summary: `${backend}/${server} enabled on ${perLb.map((p) => `${p.lb} (${p.detail})`).join(', ')}`,
    };
  }

  /**
   * Monotonic switchover: on each LB, in ONE connection, the upgraded server is enabled before
   * the old ones are drained, so the backend never has neither old nor new code in service and
   * no LB lags between the two commands. Commands already in effect are not sent again.
   */
  async function switchOverApiServers(input: {
    lbs: LbTarget[];
    backend: string;
    enable: string;
    drain: string[];
    mode: DrainMode;
    weights: RecordedWeights;
  }): Promise<StepResult> {
    const { backend, enable, mode } = input;
    checkNames(backend, [enable, ...input.drain]);
    const stotAt: Record<string, Record<string, number>> = {};
    const perLb = await onEveryLb(input.lbs, async (lb): Promise<PerLb> => {
      const weight = input.weights[lb.node]?.[enable];
      if (weight === undefined) {
        throw ApplicationFailure.create({
          type: 'HaproxyNoRecordedWeight',
          message: `no recorded weight for ${backend}/${enable} on LB ${lb.node}; refusing to guess one`,
          nonRetryable: true,
          details: [{ lb: lb.node, backend, server: enable }],
        });
      }
      const states = await stateOf(lb, backend);
      const need = (server: string) => states.get(server) ?? Promise.reject(noSuchServer(lb, backend, server));
      const batch: RuntimeCommand[] = [];
      const e = await need(enable);
      if (e.forcedMaint || e.forcedDrain) batch.push(commands.setState(backend, enable, 'ready'));
      if (e.uweight !== weight) batch.push(commands.setWeight(backend, enable, weight));
      for (const server of input.drain) {
        if (!satisfiesDrain(await need(server), mode)) batch.push(commands.drain(backend, server, mode));
      }
      // stot read in the same exchange as the drains: the count when they took effect.
      const { answers } = await client(lb).execute([...batch, commands.showStat(backend)]);
      const stats = serverStats(answers[batch.length]!.text, backend);
      for (const server of input.drain) (stotAt[server] ??= {})[lb.node] = stats.get(server)?.stot ?? 0;
      if (batch.length === 0) return { lb: lb.node, alreadyDone: true, detail: 'already switched over' };
      return { lb: lb.node, alreadyDone: false, detail: batch.map((c) => c.text).join('; ') };
    });
    return {
      alreadyDone: perLb.every((p) => p.alreadyDone),
      perLb,
      sessionsAtDrain: stotAt,
      summary: `${backend}: ${enable} enabled and ${input.drain.join(', ')} drained (${mode}) on ${perLb.map((p) => p.lb).join(', ')}`,
    };
  }

  /**
   * "UP" means: exact UP, full health, a passed last check, on every LB, proven by a health check
   * that completed after the enable. Measured on 2.6.12:
   * - right after `state ready` from maintenance a server reads "UP 1/3" (check_health = rise)
   *   and takes traffic before any check; fall-1 passed checks bring it to full health, one
   *   failed check sends it DOWN. A server coming out of maintenance still down reads "UP 1/3"
   *   with the stale check_status from before maintenance until that check fails.
   * - a server drained by weight or `state drain` keeps its health: restarted between two
   *   checks it reads plain "UP" with a stale L7OK until the next check.
   * - 2.6 has no per-check counter or timestamp in `show stat` or `show servers state` (only
   *   chkfail, chkdown, lastchg in seconds). What does change with every completed check:
   *   check_health while below full, check_duration (ms, usually a new value: 2..255 ms over 60
   *   reads on a busy machine), and the "* " prefix of check_status with check_code 0 while a
   *   check runs. Any of those changing between two of our reads means a check completed after
   *   the first of them; with full health, a passed status and chkfail unchanged, it passed.
   * Where none of that is seen (two checks with the same duration, or a backend polled slower
   * than it is checked), the rule stays the old one: UP, passed, chkfail unchanged for stableMs,
   * which should cover the backend's longest check interval (HAProxy's default 2 s).
   */
  async function waitForServerUp(
    input: LbServerInput & { timeoutMs: number; pollMs: number; stableMs?: number },
  ): Promise<{
    summary: string;
    statuses: Record<string, string>;
    waitedMs: number;
    provenBy: Record<string, string>;
  }> {
    const { backend, server } = input;
    const stableMs = input.stableMs ?? 2000;
    const started = Date.now();
    const delay = backoff(input.pollMs);
    interface Watch {
      /** The reading a passed check must complete after; moved on by every failed check seen. */
      base: ServerStat;
      prev: ServerStat;
      /** Passed checks seen completing since base. */
      checks: number;
      upSince?: number;
    }
    const watch = new Map<string, Watch>();
    for (;;) {
      const seen = await onEveryLb(input.lbs, async (lb) => [lb.node, await oneStat(lb, backend, server)] as const);
      const now = Date.now();
      const provenBy: Record<string, string> = {};
      for (const [lb, s] of seen) {
        const w = watch.get(lb) ?? { base: s, prev: s, checks: 0 };
        const full = s.checkRise > 0 && s.checkFall > 0 ? s.checkRise + s.checkFall - 1 : undefined;
        const up =
          s.status === 'UP' && CHECK_PASSED.has(s.checkStatus) && (full === undefined || s.checkHealth === full);
        const p = w.prev;
        // Rising ("UP 1/3" → "UP 2/3") is passed checks; anything else short of UP is not.
        const failed =
          s.chkfail !== p.chkfail ||
          s.chkdown !== p.chkdown ||
          s.checkHealth < p.checkHealth ||
          !s.status.startsWith('UP') ||
          !CHECK_PASSED.has(s.checkStatus);
        if (failed) {
          // Only checks completing after this reading count from here on.
          w.base = s;
          w.checks = 0;
          w.upSince = undefined;
        } else {
          const rose = s.checkHealth - p.checkHealth;
          const completed =
            rose > 0 ||
            (s.checkDuration !== p.checkDuration && !s.checkRunning && !p.checkRunning) ||
            (p.checkRunning && !s.checkRunning);
          if (completed && s !== w.base) w.checks += Math.max(1, rose);
          w.upSince = up ? (w.upSince ?? now) : undefined;
        }
        w.prev = s;
        watch.set(lb, w);
        // As many passed checks as HAProxy itself asks of a server leaving maintenance (fall-1,
        // from "UP 1/3" to full health), so a server that passes one check and fails the next
        // is still caught here, whatever the drain mode.
        const need = Math.max(1, s.checkFall - 1);
        if (up && !failed && w.checks >= need) provenBy[lb] = `${w.checks} passed check(s) after the enable`;
        else if (w.upSince !== undefined && now - w.upSince >= stableMs)
          provenBy[lb] = `UP for ${now - w.upSince} ms (no check completion visible)`;
      }
      const statuses = Object.fromEntries(seen.map(([lb, s]) => [lb, `${s.status} ${s.checkStatus}`.trim()]));
      heartbeat({
        statuses,
        provenBy,
        upForMs: Object.fromEntries([...watch].map(([lb, w]) => [lb, w.upSince === undefined ? 0 : now - w.upSince])),
      });
      const show = Object.entries(statuses)
        .map(([lb, st]) => `${lb}: ${st}`)
        .join(', ');
      if (seen.every(([lb]) => provenBy[lb] !== undefined)) {
        const how = Object.entries(provenBy)
          .map(([lb, b]) => `${lb}: ${b}`)
          .join('; ');
        return {
          summary: `${backend}/${server} is UP on every LB (${show}); proven by ${how}`,
          statuses,
          waitedMs: now - started,
          provenBy,
        };
      }
      if (now - started >= input.timeoutMs) {
        throw ApplicationFailure.create({
          type: 'HaproxyServerNotUp',
          message: `${backend}/${server} is not UP on every LB after ${Math.round((now - started) / 1000)} s: ${show}`,
          nonRetryable: true,
          details: [{ backend, server, statuses }],
        });
      }
      await pause(delay());
    }
  }

  /** The counters the zero-downtime proof compares before and after the restart. */
  async function readBackendCounters(input: {
    lbs: LbTarget[];
    backend: string;
  }): Promise<{ summary: string; counters: Record<string, Record<string, ServerCounters>> }> {
    const per = await onEveryLb(input.lbs, async (lb) => {
      const stats = await statsOf(lb, input.backend);
      const servers = Object.fromEntries(
        [...stats.values()].map((s) => [
          s.server,
          {
            status: s.status,
            weight: s.weight,
            scur: s.scur,
            wretr: s.wretr,
            wredis: s.wredis,
            econ: s.econ,
            eresp: s.eresp,
          },
        ]),
      );
      return [lb.node, servers] as const;
    });
    const counters = Object.fromEntries(per);
    const total = (k: 'wretr' | 'wredis' | 'econ' | 'eresp') =>
      per.reduce((n, [, s]) => n + Object.values(s).reduce((m, c) => m + c[k], 0), 0);
    return {
      counters,
      summary: `${input.backend} on ${per.length} LB(s): wretr=${total('wretr')} wredis=${total('wredis')} econ=${total('econ')} eresp=${total('eresp')}`,
    };
  }

  /**
   * Preflight, changing nothing. The socket level comes from `show cli level` (2.6 has it at
   * every level and it answers "admin", "operator" or "user"), which is the truthful check:
   * `set server`, `shutdown sessions` need admin, while `show stat`, `show servers state`,
   * `show sess` and even `show fd` work at operator level (measured), so no read would tell.
   */
  async function checkLoadBalancers(input: {
    lbs: LbTarget[];
    backend: string;
    servers: string[];
  }): Promise<{ summary: string; levels: Record<string, CliLevel> }> {
    checkNames(input.backend, input.servers);
    const per = await onEveryLb(input.lbs, async (lb) => {
      const { answers, level } = await client(lb).execute([commands.showStat(input.backend)]);
      const stats = serverStats(answers[0]!.text, input.backend);
      const problems: string[] = [];
      if (level !== 'admin')
        problems.push(`${lb.node}: ${describeSocket(lb.socket)} grants level ${level}, draining needs level admin`);
      for (const server of input.servers) {
        const s = stats.get(server);
        if (!s) problems.push(`${lb.node}: backend ${input.backend} has no server ${server}`);
        else if (s.status !== 'UP')
          problems.push(
            `${lb.node}: ${input.backend}/${server} is ${s.status}${s.checkStatus ? ` (${s.checkStatus})` : ''}, not UP`,
          );
      }
      return { lb: lb.node, level, problems };
    });
    const problems = per.flatMap((p) => p.problems);
    if (problems.length) {
      throw ApplicationFailure.create({
        type: 'HaproxyPreflightFailed',
        message: `load balancer preflight failed: ${problems.join('; ')}`,
        nonRetryable: true,
        details: [{ problems }],
      });
    }
    return {
      levels: Object.fromEntries(per.map((p) => [p.lb, p.level])),
      summary: `${per.length} LB(s) reachable at level admin; ${input.servers.map((s) => `${input.backend}/${s}`).join(', ')} UP on all`,
    };
  }

  return {
    recordServerWeights,
    drainApiServer,
    waitForNoSessions,
    shutdownSessions,
    enableApiServer,
    switchOverApiServers,
    waitForServerUp,
    readBackendCounters,
    checkLoadBalancers,
  };
}

export type HaproxyActivities = ReturnType<typeof createHaproxyActivities>;
