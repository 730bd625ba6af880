// The VIP probe: steady real traffic through the VIP for the whole upgrade window, so
// "zero downtime" is measured, not assumed. Each client sends its requests one after another,
// like a user's session, which is what makes "saw an older API after a newer one" meaningful.
import { activityContext } from '../common';
import { randomBytes } from 'node:crypto';
import { httpRequest, HttpRequestError, type HttpResponse } from './get';
import type { ProbeStopEvents } from './probeStop';
import {
  issueToken,
  readCloudCredentials,
  sshPublicKey,
  TokenError,
  type CloudCredentials,
  type Token,
} from './keystone';
import { LatencyHistogram, type LatencySummary } from './latency';
import { compareMicroversions, parseVersionDocument } from './versions';

export type ProbeFailureKind = 'connection' | 'timeout' | 'http5xx' | 'http4xx' | 'invalidVersionDocument';

export interface ProbeFailure {
  at: string;
  client: number;
  path: string;
  kind: ProbeFailureKind;
  reason: string;
}

/**
 * Authenticated traffic: a version document alone cannot see a nova-api that fails on its
 * database or on keystone. Each client gets a keystone token (from a clouds.yaml on the probe's
 * own host, so no password is in the workflow's history) and sends these with it, through the VIP.
 */
export interface ProbeAuth {
  cloudsYaml: string;
  cloud: string;
  /** GETs sent with the token, e.g. /v2.1/servers/detail (a scatter-gather over every cell) and /v2.1/flavors. */
  paths: string[];
  /** Also create a keypair, then delete it: writes to the API database. */
  keypairs: boolean;
}

type Action =
  | { kind: 'get'; path: string }
  | { kind: 'authGet'; path: string }
  | { kind: 'keypairCreate' }
  | { kind: 'keypairDelete' };

/** Tokens are renewed this long before keystone's expiry (default lifetime one hour). */
const TOKEN_RENEW_MS = 5 * 60_000;
const KEYPAIRS = '/v2.1/os-keypairs';

export interface VipProbeOptions {
  /** The VIP's base URL; paths are appended to it. */
  url: string;
  paths: string[];
  ratePerSecond?: number;
  clients?: number;
  requestTimeoutMs?: number;
  /** Stop after this long (the caller's choice). */
  stopAfterMs?: number;
  /** Stop after this long whatever happens: a forgotten probe must not run for ever. */
  maxDurationMs: number;
  /**
   * Ask for `latest`, so that nova answers on versioned paths with its max microversion in
   * OpenStack-API-Version; the version documents say it in their body anyway.
   */
  requestLatestMicroversion?: boolean;
  auth?: ProbeAuth;
}

export interface ClientSnapshot {
  client: number;
  requests: number;
  failures: number;
  versionDecreases: number;
  maxMicroversion: string | null;
  /** Max microversions as this client saw them change, in order (first 20 changes). */
  versionsInOrder: string[];
}

export interface ProbeSnapshot {
  /** Every request the probe sent: through the VIP, and its token requests to keystone. */
  requests: number;
  /** Requests through the VIP that carried a keystone token. */
  authenticatedRequests?: number;
  /** Token requests to keystone (counted in requests, not in authenticatedRequests). */
  tokenRequests?: number;
  failedRequests: number;
  failuresByKind: Partial<Record<ProbeFailureKind, number>>;
  firstFailures: ProbeFailure[];
  latencyMs: LatencySummary;
  versionDecreases: number;
  maxMicroversionSeen: string | null;
  /** Requests answered by each backend, from HAProxy's X-Lab-Node header when present. */
  requestsByBackend: Record<string, number>;
  perClient: ClientSnapshot[];
  durationSeconds: number;
  running: boolean;
  stoppedBecause?: 'stopped' | 'stopAfter' | 'maxDuration' | 'cancelled';
  /** Times the probe was restarted after its worker died; each restart leaves an unmeasured gap. */
  resumedAfterWorkerLoss?: number;
}

/**
 * Adds a later attempt's aggregates to an earlier one's. Percentiles cannot be merged exactly
 * from summaries, so the larger of the two is kept: an upper bound, never an understatement.
 */
export function mergeSnapshots(a: ProbeSnapshot, b: ProbeSnapshot): ProbeSnapshot {
  const kinds = { ...a.failuresByKind };
  for (const [k, n] of Object.entries(b.failuresByKind) as [ProbeFailureKind, number][]) kinds[k] = (kinds[k] ?? 0) + n;
  const backends = { ...a.requestsByBackend };
  for (const [k, n] of Object.entries(b.requestsByBackend)) backends[k] = (backends[k] ?? 0) + n;
  const maxOf = (x: string | null, y: string | null) => (!x ? y : !y ? x : compareMicroversions(x, y) >= 0 ? x : y);
  return {
    requests: a.requests + b.requests,
    authenticatedRequests: (a.authenticatedRequests ?? 0) + (b.authenticatedRequests ?? 0),
    tokenRequests: (a.tokenRequests ?? 0) + (b.tokenRequests ?? 0),
    failedRequests: a.failedRequests + b.failedRequests,
    failuresByKind: kinds,
    firstFailures: [...a.firstFailures, ...b.firstFailures].slice(0, MAX_FIRST_FAILURES),
    latencyMs: {
      p50: Math.max(a.latencyMs.p50, b.latencyMs.p50),
      p95: Math.max(a.latencyMs.p95, b.latencyMs.p95),
      p99: Math.max(a.latencyMs.p99, b.latencyMs.p99),
      max: Math.max(a.latencyMs.max, b.latencyMs.max),
    },
    versionDecreases: a.versionDecreases + b.versionDecreases,
    maxMicroversionSeen: maxOf(a.maxMicroversionSeen, b.maxMicroversionSeen),
    requestsByBackend: backends,
    perClient: [...a.perClient, ...b.perClient.map((c) => ({ ...c, client: c.client + a.perClient.length }))].slice(
      -64,
    ),
    durationSeconds: Math.round((a.durationSeconds + b.durationSeconds) * 10) / 10,
    running: b.running,
    ...(b.stoppedBecause ? { stoppedBecause: b.stoppedBecause } : {}),
    resumedAfterWorkerLoss: (a.resumedAfterWorkerLoss ?? 0) + (b.resumedAfterWorkerLoss ?? 0),
  };
}

const MAX_FIRST_FAILURES = 20;
const MAX_VERSION_CHANGES = 20;
const MAX_BACKENDS = 64;
const VERSION_PATH = /^\/(v2(\.1)?\/?)?$/;

interface ClientState {
  token?: Token;
  /** The keypair this client created and has yet to delete. */
  keypair?: string;
  requests: number;
  failures: number;
  versionDecreases: number;
  max: string | null;
  last: string | null;
  versionsInOrder: string[];
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The max microversion a response reveals: from a version document, else from the headers. */
export function microversionOf(
  path: string,
  body: string,
  headers: Record<string, string | string[] | undefined>,
  askedLatest: boolean,
): string | undefined {
  if (VERSION_PATH.test(path)) {
    try {
      return parseVersionDocument(body).maxMicroversion;
    } catch {
      return undefined;
    }
  }
  // Without `latest` in the request these headers echo the version used, not the max.
  if (!askedLatest) return undefined;
  const modern = /compute\s+(\d+\.\d+)/.exec(header(headers, 'openstack-api-version') ?? '');
  if (modern) return modern[1];
  const legacy = /^(\d+\.\d+)$/.exec((header(headers, 'x-openstack-nova-api-version') ?? '').trim());
  return legacy?.[1];
}

export class VipProbe {
  private readonly opts: Required<Omit<VipProbeOptions, 'stopAfterMs' | 'auth'>> &
    Pick<VipProbeOptions, 'stopAfterMs' | 'auth'>;
  private readonly actions: Action[];
  private credentials?: CloudCredentials;
  private publicKey?: string;
  private readonly runId = randomBytes(3).toString('hex');
  private keypairSeq = 0;
  private authenticated = 0;
  private tokenRequests = 0;
  private readonly latency = new LatencyHistogram();
  private readonly clients: ClientState[];
  private readonly failuresByKind: Partial<Record<ProbeFailureKind, number>> = {};
  private readonly firstFailures: ProbeFailure[] = [];
  private readonly byBackend = new Map<string, number>();
  private requests = 0;
  private failed = 0;
  private startedAt = 0;
  private endedAt = 0;
  private stopping = false;
  private stoppedBecause?: ProbeSnapshot['stoppedBecause'];
  private readonly wake = new Set<() => void>();
  private loops: Promise<void>[] = [];
  private timers: NodeJS.Timeout[] = [];
  private finished?: Promise<ProbeSnapshot>;
  private resolveDone!: (s: ProbeSnapshot) => void;
  /** Resolves with the final snapshot once the probe has stopped, for whatever reason. */
  readonly done: Promise<ProbeSnapshot>;

  constructor(opts: VipProbeOptions) {
    if (!opts.paths.length) throw new Error('the probe needs at least one path');
    if (opts.auth && !opts.auth.paths.length && !opts.auth.keypairs)
      throw new Error('probe.auth needs at least one path or keypairs: true');
    if (!(opts.maxDurationMs > 0)) throw new Error('the probe needs a positive maxDurationMs');
    this.opts = {
      ratePerSecond: 20,
      clients: 4,
      requestTimeoutMs: 10_000,
      requestLatestMicroversion: true,
      ...opts,
      url: opts.url.replace(/\/+$/, ''),
    };
    // One cycle: the anonymous paths, then the authenticated ones, then a keypair's create and delete.
    this.actions = [
      ...opts.paths.map((path): Action => ({ kind: 'get', path })),
      ...(opts.auth?.paths ?? []).map((path): Action => ({ kind: 'authGet', path })),
      ...(opts.auth?.keypairs ? [{ kind: 'keypairCreate' } as const, { kind: 'keypairDelete' } as const] : []),
    ];
    this.clients = Array.from({ length: this.opts.clients }, () => ({
      requests: 0,
      failures: 0,
      versionDecreases: 0,
      max: null,
      last: null,
      versionsInOrder: [],
    }));
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  start(): void {
    if (this.startedAt) throw new Error('the probe was already started');
    // Bad credentials file: a sentence before any traffic, not a window of failures.
    if (this.opts.auth) {
      this.credentials = readCloudCredentials(this.opts.auth.cloudsYaml, this.opts.auth.cloud);
      if (this.opts.auth.keypairs) this.publicKey = sshPublicKey('nova-upgrade-probe');
    }
    this.startedAt = Date.now();
    this.timers.push(setTimeout(() => void this.stop('maxDuration'), this.opts.maxDurationMs));
    if (this.opts.stopAfterMs !== undefined)
      this.timers.push(
        setTimeout(() => void this.stop('stopAfter'), Math.min(this.opts.stopAfterMs, this.opts.maxDurationMs)),
      );
    this.loops = this.clients.map((_, i) => this.runClient(i));
  }

  /** Stops sending, lets requests in flight finish (bounded by their timeout), returns the totals. */
  stop(reason: NonNullable<ProbeSnapshot['stoppedBecause']> = 'stopped'): Promise<ProbeSnapshot> {
    if (this.finished) return this.finished;
    this.stopping = true;
    this.stoppedBecause = reason;
    this.timers.forEach(clearTimeout);
    this.wake.forEach((w) => w());
    this.finished = Promise.all(this.loops).then(() => {
      this.endedAt = Date.now();
      const s = this.snapshot();
      this.resolveDone(s);
      return s;
    });
    return this.finished;
  }

  snapshot(): ProbeSnapshot {
    let max: string | null = null;
    for (const c of this.clients) if (c.max && (!max || compareMicroversions(c.max, max) > 0)) max = c.max;
    const end = this.endedAt || Date.now();
    return {
      requests: this.requests,
      ...(this.opts.auth ? { authenticatedRequests: this.authenticated, tokenRequests: this.tokenRequests } : {}),
      failedRequests: this.failed,
      failuresByKind: { ...this.failuresByKind },
      firstFailures: [...this.firstFailures],
      latencyMs: this.latency.summary(),
      versionDecreases: this.clients.reduce((n, c) => n + c.versionDecreases, 0),
      maxMicroversionSeen: max,
      requestsByBackend: Object.fromEntries(this.byBackend),
      perClient: this.clients.map((c, client) => ({
        client,
        requests: c.requests,
        failures: c.failures,
        versionDecreases: c.versionDecreases,
        maxMicroversion: c.max,
        versionsInOrder: [...c.versionsInOrder],
      })),
      durationSeconds: this.startedAt ? Math.round((end - this.startedAt) / 100) / 10 : 0,
      running: !!this.startedAt && !this.endedAt,
      ...(this.stoppedBecause ? { stoppedBecause: this.stoppedBecause } : {}),
    };
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wake.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wake.add(done);
    });
  }

  private async runClient(index: number): Promise<void> {
    const interval = (1000 * this.opts.clients) / this.opts.ratePerSecond;
    // Staggered so that the clients together send at an even rate.
    let next = this.startedAt + (index * interval) / this.opts.clients;
    let n = index;
    while (!this.stopping) {
      const wait = next - Date.now();
      if (wait > 0) await this.pause(wait);
      if (this.stopping) break;
      let action = this.actions[n++ % this.actions.length]!;
      // Nothing to delete (its create failed, or this client starts mid-cycle): the next action instead.
      if (action.kind === 'keypairDelete' && !this.clients[index]!.keypair)
        action = this.actions[n++ % this.actions.length]!;
      await this.act(index, action);
      // A slow answer delays this client's next request rather than bunching them up later.
      next = Math.max(next + interval, Date.now());
    }
    // A keypair created just before the stop is deleted, so the probe leaves none behind.
    if (this.clients[index]!.keypair) await this.act(index, { kind: 'keypairDelete' });
  }

  private async act(index: number, action: Action): Promise<void> {
    if (action.kind === 'get') {
      await this.request(index, 'GET', action.path);
      return;
    }
    const token = await this.token(index);
    if (!token) return;
    const c = this.clients[index]!;
    if (action.kind === 'authGet') {
      await this.request(index, 'GET', action.path, token);
      return;
    }
    if (action.kind === 'keypairCreate') {
      const name = `nova-upgrade-probe-${this.runId}-${index}-${++this.keypairSeq}`;
      const ok = await this.request(index, 'POST', KEYPAIRS, token, {
        keypair: { name, public_key: this.publicKey, type: 'ssh' },
      });
      if (ok) c.keypair = name;
      return;
    }
    const name = c.keypair!;
    c.keypair = undefined;
    await this.request(index, 'DELETE', `${KEYPAIRS}/${encodeURIComponent(name)}`, token);
  }

  /** This client's token, renewed ahead of its expiry; undefined (a failure counted) if keystone did not give one. */
  private async token(index: number): Promise<string | undefined> {
    const c = this.clients[index]!;
    if (c.token && c.token.expiresAt - Date.now() > TOKEN_RENEW_MS) return c.token.id;
    const began = performance.now();
    this.requests++;
    this.tokenRequests++;
    c.requests++;
    try {
      c.token = await issueToken(this.credentials!, this.opts.requestTimeoutMs);
      this.latency.record(performance.now() - began);
      return c.token.id;
    } catch (e) {
      this.latency.record(performance.now() - began);
      c.token = undefined;
      const kind = e instanceof TokenError ? e.kind : 'connection';
      this.fail(index, 'keystone /v3/auth/tokens', kind, (e as Error).message);
      return undefined;
    }
  }

  /** One request through the VIP; true if it succeeded. */
  private async request(index: number, method: string, path: string, token?: string, json?: unknown): Promise<boolean> {
    const c = this.clients[index]!;
    const began = performance.now();
    const headers: Record<string, string> = {
      ...(this.opts.requestLatestMicroversion
        ? { 'OpenStack-API-Version': 'compute latest', 'X-OpenStack-Nova-API-Version': 'latest' }
        : {}),
      ...(token ? { 'X-Auth-Token': token } : {}),
    };
    const label = method === 'GET' ? path : `${method} ${path}`;
    this.requests++;
    c.requests++;
    if (token) this.authenticated++;
    let res: HttpResponse;
    try {
      res = await httpRequest(method, this.opts.url + path, {
        timeoutMs: this.opts.requestTimeoutMs,
        headers,
        ...(json !== undefined ? { json } : {}),
      });
    } catch (e) {
      this.latency.record(performance.now() - began);
      if (e instanceof HttpRequestError) this.fail(index, label, e.kind, e.message);
      else this.fail(index, label, 'connection', (e as Error).message);
      return false;
    }
    this.latency.record(performance.now() - began);
    const backend = header(res.headers, 'x-lab-node');
    if (backend && (this.byBackend.has(backend) || this.byBackend.size < MAX_BACKENDS))
      this.byBackend.set(backend, (this.byBackend.get(backend) ?? 0) + 1);
    const from = backend ? ` from ${backend}` : '';
    if (res.status >= 500) {
      this.fail(index, label, 'http5xx', `HTTP ${res.status}${from}`);
      return false;
    }
    if (res.status >= 400) {
      // A token nova refused: get a new one next time, and count this as the failure it was.
      if (res.status === 401) c.token = undefined;
      this.fail(index, label, 'http4xx', `HTTP ${res.status}${from}: ${res.body.slice(0, 200)}`);
      return false;
    }
    const mv = microversionOf(path, res.body, res.headers, this.opts.requestLatestMicroversion);
    if (mv === undefined && method === 'GET' && VERSION_PATH.test(path) && res.status < 300) {
      this.fail(index, label, 'invalidVersionDocument', `HTTP ${res.status} without a version document${from}`);
      return false;
    }
    if (mv !== undefined) this.sawVersion(c, mv);
    return true;
  }

  private sawVersion(c: ClientState, mv: string): void {
    if (c.max && compareMicroversions(mv, c.max) < 0) c.versionDecreases++;
    if (!c.max || compareMicroversions(mv, c.max) > 0) c.max = mv;
    if (mv !== c.last && c.versionsInOrder.length < MAX_VERSION_CHANGES) c.versionsInOrder.push(mv);
    c.last = mv;
  }

  private fail(client: number, path: string, kind: ProbeFailureKind, reason: string): void {
    this.failed++;
    this.clients[client]!.failures++;
    this.failuresByKind[kind] = (this.failuresByKind[kind] ?? 0) + 1;
    if (this.firstFailures.length < MAX_FIRST_FAILURES)
      this.firstFailures.push({ at: new Date().toISOString(), client, path, kind, reason });
  }
}

export interface RunVipProbeInput extends Omit<VipProbeOptions, 'maxDurationMs'> {
  maxDurationMs: number;
  heartbeatEveryMs?: number;
  /** The aggregates of the window's earlier segments: a window longer than one segment goes on. */
  carry?: ProbeSnapshot;
}

/**
 * Runs until cancelled, stopAfterMs or maxDurationMs, heartbeating the aggregates. Cancelled
 * by the workflow, it still completes with the aggregates (cancel it with
 * WAIT_CANCELLATION_COMPLETED to receive them); only aggregates are returned, since a
 * per-request series would outgrow Temporal's payload limit. Needs a heartbeat timeout for
 * the cancellation to arrive.
 */
/**
 * Asks the workflow whether the window is over (every 2 s); a cancellation would lose a probe
 * between attempts. `stopEvents` answers sooner where the workflow's task ran in this worker.
 */
export type StopRequested = (workflowId: string) => Promise<boolean>;

export async function runVipProbe(
  input: RunVipProbeInput,
  stopRequested?: StopRequested,
  stopEvents?: ProbeStopEvents,
): Promise<ProbeSnapshot> {
  const ctx = activityContext();
  // A retry after the worker died carries on from the last heartbeat instead of starting over.
  const beaten = ctx?.info.heartbeatDetails as ProbeSnapshot | undefined;
  // Heartbeats already include the carried segments; only they mean a worker was lost.
  const earlier = beaten
    ? { ...beaten, resumedAfterWorkerLoss: (beaten.resumedAfterWorkerLoss ?? 0) + 1 }
    : input.carry;
  const total = (s: ProbeSnapshot) => (earlier ? mergeSnapshots(earlier, s) : s);
  const probe = new VipProbe(input);
  probe.start();
  const beat = setInterval(() => ctx?.heartbeat(total(probe.snapshot())), input.heartbeatEveryMs ?? 1000);
  const workflowId = ctx?.info.workflowExecution?.workflowId;
  const runId = ctx?.info.workflowExecution?.runId;
  // By event when the workflow's task ran in this worker; the query below covers every other case.
  const unsubscribe =
    stopEvents && workflowId && runId
      ? stopEvents.onStop(workflowId, runId, () => void probe.stop('stopped'))
      : undefined;
  const ask =
    stopRequested && workflowId
      ? setInterval(() => {
          stopRequested(workflowId).then(
            (stop) => void (stop && probe.stop('stopped')),
            () => undefined, // no answer now (worker restarting): ask again next time
          );
        }, 2000)
      : undefined;
  try {
    const cancelled = ctx
      ? ctx.cancelled.then(
          () => false,
          () => true,
        )
      : new Promise<boolean>(() => undefined);
    const stoppedByCancel = await Promise.race([probe.done.then(() => false), cancelled]);
    if (!stoppedByCancel) return total(await probe.done);
    const result = total(await probe.stop('cancelled'));
    // A worker shutting down or a timed-out attempt is not the workflow asking to stop: let
    // Temporal retry it rather than report a short window as the whole one.
    if (!ctx?.cancellationDetails?.cancelRequested) throw await ctx!.cancelled.catch((e: unknown) => e);
    return result;
  } finally {
    clearInterval(beat);
    if (ask) clearInterval(ask);
    unsubscribe?.();
    await probe.stop();
  }
}

export function createProbeActivities(deps: { stopRequested?: StopRequested; stopEvents?: ProbeStopEvents } = {}) {
  return { runVipProbe: (input: RunVipProbeInput) => runVipProbe(input, deps.stopRequested, deps.stopEvents) };
}
