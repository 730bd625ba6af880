// One pool per worker process: connections to a node are shared by every activity running on
// the worker, so hundreds of concurrent commands cost a handful of handshakes per node.
import type { Client } from 'ssh2';
import { JumpHosts, openConnection } from './connect';
import { runDetached } from './detached';
import * as fail from './errors';
import { ChannelNotOpened, abortReason, execCommand } from './exec';
import { DEFAULT_OUTPUT_LIMIT_BYTES } from './outputTail';
import type { CommandResult, DetachedOptions, RemoteRunner, RunOptions } from './types';
import type { SshTarget } from '../../common/sshTarget';

export interface SshPoolOptions {
  /** Connections opened to one node before further commands queue. */
  maxConnectionsPerHost?: number;
  /**
   * Commands sharing one connection. OpenSSH allows 10 sessions per connection by default
   * (MaxSessions); 8 leaves room for the extra channel that kills a cancelled command.
   */
  maxChannelsPerConnection?: number;
  /** Bytes kept from the end of stdout and of stderr. */
  outputLimitBytes?: number;
  /** An unused connection is closed after this long. */
  idleTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** Between TERM and KILL when stopping a remote process group. */
  killGraceMs?: number;
  /**
   * Commands running at once on this worker, over every node: a batch of 50 computes with
   * their detached polls must not open thousands of channels at once.
   */
  maxSessions?: number;
  /**
   * Handshakes in flight at once, over every node. Default DEFAULT_MAX_HANDSHAKES: sshd's
   * MaxStartups (10:30:100 by default) drops unauthenticated connections at random past 10,
   * and one sshd may answer for many node addresses (an SSH gateway, the scale lab).
   */
  maxHandshakes?: number;
  /**
   * Idle connections kept over every node; above it the least recently used idle one is closed
   * at once instead of at its idle timeout. Default IDLE_CONNECTIONS_CAP.
   */
  maxIdleConnections?: number;
}

/**
 * Why 128: the 500-compute bench ended with 502 connections open, one per node touched within
 * the 120 s idle timeout (the batches' SIGHUPs touch every node again), and at 1,000 computes
 * that is ~1,000 sockets against Debian's default soft limit of 1,024 open files per process
 * (EMFILE for everything else the worker opens), plus a keepalive every 15 s on each. A batch
 * runs at most `compute.parallel` nodes (50 in the bench), and what it reuses soon is its own
 * nodes (wait-up polls, a retry) and the controller and API nodes: 128 holds two batches of 50
 * and the control plane, and a node evicted costs one handshake (~35 ms on the lab) when touched
 * again.
 */
export const IDLE_CONNECTIONS_CAP = 128;

/**
 * Past the idle cap, every batch of a fleet opens a connection to each of its nodes at once
 * (1,000 computes in batches of 50 meet 50 new nodes a batch), and at 8 in flight a batch's
 * first reads took 4.1 s on average for 0.4 s of commands. 32 did not pay: the same 1,000-compute
 * run took 1.65 × its ideal against 1.60 × at 8 (reads 2.9 s), with the worker's peak RSS at
 * 494 MiB against 343 MiB (bench/fleet.ts, 7 Dec, one run each). So 8 stays, below sshd's
 * default MaxStartups (10) where one sshd answers for many addresses; `nova-upgrade worker
 * --max-handshakes` raises it where each node has its own sshd.
 */
export const DEFAULT_MAX_HANDSHAKES = 8;

export interface SshPoolStats {
  /** Connections that completed a handshake since the pool was made: reuse keeps this low. */
  connectionsOpened: number;
  connectionsOpen: number;
  commandsRunning: number;
  commandsQueued: number;
  /** Sessions a node refused below our per-connection cap (its MaxSessions is lower). */
  sessionsRefused: number;
  /** Commands waiting for the worker-wide session cap. */
  sessionsQueued: number;
  /** The most commands that ran at once, and the most handshakes in flight at once. */
  peakSessions: number;
  peakHandshakes: number;
  /** Connections open with no command running, and those closed by the idle cap. */
  connectionsIdle: number;
  idleEvicted: number;
}

/** A counting semaphore; waiters are served in arrival order. */
class Limiter {
  private used = 0;
  peak = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  get queued(): number {
    return this.queue.length;
  }
  async take(signal?: AbortSignal): Promise<void> {
    if (this.used < this.limit) {
      this.used++;
      this.peak = Math.max(this.peak, this.used);
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const go = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.queue.indexOf(go);
        if (i >= 0) this.queue.splice(i, 1);
        reject(abortReason(signal!));
      };
      this.queue.push(go);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
  give(): void {
    const next = this.queue.shift();
    // The slot passes to the next waiter still counted, so a newcomer cannot overtake it.
    if (next) next();
    else this.used--;
  }
}

interface PooledConnection {
  ready: Promise<Client>;
  client?: Client;
  active: number;
  /** Lowered when the server refuses a session before our own cap is reached. */
  channelLimit: number;
  lastRefusalAt: number;
  dead: boolean;
  idleTimer?: NodeJS.Timeout;
}

interface Waiter {
  /** A connection with a channel already reserved, or undefined to look again. */
  wake: (conn: PooledConnection | undefined) => void;
  fail: (err: unknown) => void;
}

interface HostSlot {
  connections: PooledConnection[];
  waiters: Waiter[];
}

const CHANNEL_OPEN_ATTEMPTS = 4;
const REFUSAL_MEMORY_MS = 30_000;

export class SshPool implements RemoteRunner {
  private readonly slots = new Map<string, HostSlot>();
  private readonly jumps = new JumpHosts();
  private readonly settings: Required<SshPoolOptions>;
  private opened = 0;
  private sessionsRefused = 0;
  private closed = false;
  private readonly sessions: Limiter;
  private readonly handshakes: Limiter;
  /** Idle connections, least recently used first (a Map keeps insertion order). */
  private readonly idle = new Map<PooledConnection, HostSlot>();
  private idleEvicted = 0;

  constructor(options: SshPoolOptions = {}) {
    this.settings = {
      maxConnectionsPerHost: options.maxConnectionsPerHost ?? 4,
      maxChannelsPerConnection: options.maxChannelsPerConnection ?? 8,
      outputLimitBytes: options.outputLimitBytes ?? DEFAULT_OUTPUT_LIMIT_BYTES,
      idleTimeoutMs: options.idleTimeoutMs ?? 120_000,
      keepaliveIntervalMs: options.keepaliveIntervalMs ?? 15_000,
      keepaliveCountMax: options.keepaliveCountMax ?? 3,
      killGraceMs: options.killGraceMs ?? 5_000,
      maxSessions: options.maxSessions ?? 256,
      maxHandshakes: options.maxHandshakes ?? DEFAULT_MAX_HANDSHAKES,
      maxIdleConnections: options.maxIdleConnections ?? IDLE_CONNECTIONS_CAP,
    };
    this.sessions = new Limiter(this.settings.maxSessions);
    this.handshakes = new Limiter(this.settings.maxHandshakes);
  }

  async run(target: SshTarget, command: string, opts: RunOptions = {}): Promise<CommandResult> {
    await this.sessions.take(opts.signal);
    try {
      return await this.runCapped(target, command, opts);
    } finally {
      this.sessions.give();
    }
  }

  private async runCapped(target: SshTarget, command: string, opts: RunOptions): Promise<CommandResult> {
    const slot = this.slotFor(target);
    for (let attempt = 1; ; attempt++) {
      const conn = await this.acquire(slot, target, opts.signal);
      try {
        return await execCommand({
          client: conn.client!,
          target,
          command,
          opts,
          outputLimitBytes: opts.outputLimitBytes ?? this.settings.outputLimitBytes,
          killGraceMs: this.settings.killGraceMs,
        });
      } catch (err) {
        if (!(err instanceof ChannelNotOpened)) throw err;
        if (attempt >= CHANNEL_OPEN_ATTEMPTS) throw fail.connectFailed(target, err.reason);
        // The command never started, so trying again cannot run it twice.
        if (err.refusedByServer) {
          // Either the node's MaxSessions is below our cap, or sshd has not yet reaped a
          // session we just closed; both pass, so the limit is restored after a quiet spell.
          this.sessionsRefused++;
          conn.channelLimit = Math.max(1, conn.active - 1);
          conn.lastRefusalAt = Date.now();
        } else {
          this.drop(slot, conn);
        }
      } finally {
        this.release(slot, conn);
      }
    }
  }

  runDetached(target: SshTarget, opts: DetachedOptions): Promise<CommandResult> {
    return runDetached(this, target, opts, { killGraceMs: this.settings.killGraceMs });
  }

  stats(): SshPoolStats {
    let connectionsOpen = 0;
    let commandsRunning = 0;
    let commandsQueued = 0;
    for (const slot of this.slots.values()) {
      connectionsOpen += slot.connections.filter((c) => c.client).length;
      commandsRunning += slot.connections.reduce((n, c) => n + c.active, 0);
      commandsQueued += slot.waiters.length;
    }
    return {
      connectionsOpened: this.opened,
      connectionsOpen,
      commandsRunning,
      commandsQueued,
      sessionsRefused: this.sessionsRefused,
      sessionsQueued: this.sessions.queued,
      peakSessions: this.sessions.peak,
      peakHandshakes: this.handshakes.peak,
      connectionsIdle: this.idle.size,
      idleEvicted: this.idleEvicted,
    };
  }

  /** Ends every connection. Detached runs keep running on their nodes; plain commands may too. */
  async close(): Promise<void> {
    this.closed = true;
    const closing: Promise<void>[] = [];
    for (const slot of this.slots.values()) {
      for (const waiter of slot.waiters.splice(0)) waiter.wake(undefined);
      for (const conn of slot.connections.splice(0)) {
        conn.dead = true;
        clearTimeout(conn.idleTimer);
        this.idle.delete(conn);
        const client = conn.client;
        if (!client) continue;
        closing.push(
          new Promise((resolve) => {
            const timer = setTimeout(() => {
              client.destroy();
              resolve();
            }, 1000);
            client.once('close', () => {
              clearTimeout(timer);
              resolve();
            });
            client.end();
          }),
        );
      }
    }
    this.slots.clear();
    await Promise.all(closing);
    this.jumps.closeAll();
  }

  private slotFor(target: SshTarget): HostSlot {
    const { node: _node, connectTimeoutMs: _timeout, ...how } = target;
    const key = JSON.stringify(how);
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { connections: [], waiters: [] };
      this.slots.set(key, slot);
    }
    return slot;
  }

  private async acquire(slot: HostSlot, target: SshTarget, signal?: AbortSignal): Promise<PooledConnection> {
    for (;;) {
      if (signal?.aborted) throw abortReason(signal);
      if (this.closed) throw new Error(`ssh pool is closed; not running commands on ${fail.where(target)}`);
      for (const c of slot.connections) {
        if (
          c.channelLimit < this.settings.maxChannelsPerConnection &&
          Date.now() - c.lastRefusalAt > REFUSAL_MEMORY_MS
        ) {
          c.channelLimit = this.settings.maxChannelsPerConnection;
        }
      }
      let conn = slot.connections.find((c) => !c.dead && c.active < c.channelLimit);
      if (!conn && slot.connections.length < this.settings.maxConnectionsPerHost) conn = this.connect(slot, target);
      if (conn) {
        clearTimeout(conn.idleTimer);
        this.idle.delete(conn);
        conn.active++;
      } else {
        // A connection handed over by release() comes with its channel already counted.
        conn = await this.waitForChannel(slot, signal);
        if (!conn) continue;
      }
      try {
        await conn.ready;
        return conn;
      } catch (err) {
        this.release(slot, conn);
        throw err;
      }
    }
  }

  private waitForChannel(slot: HostSlot, signal?: AbortSignal): Promise<PooledConnection | undefined> {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        slot.waiters.splice(slot.waiters.indexOf(waiter), 1);
        reject(abortReason(signal!));
      };
      const waiter: Waiter = {
        wake: (conn) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(conn);
        },
        fail: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      slot.waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private connect(slot: HostSlot, target: SshTarget): PooledConnection {
    const conn: PooledConnection = {
      ready: this.handshake(target),
      active: 0,
      channelLimit: this.settings.maxChannelsPerConnection,
      lastRefusalAt: 0,
      dead: false,
    };
    slot.connections.push(conn);
    conn.ready.then(
      (client) => {
        this.opened++;
        conn.client = client;
        if (conn.dead || this.closed) return client.end();
        client.once('close', () => this.drop(slot, conn));
      },
      (err: unknown) => this.drop(slot, conn, err),
    );
    // The connection's failure reaches callers through acquire(); this only marks it handled.
    conn.ready.catch(() => undefined);
    return conn;
  }

  private async handshake(target: SshTarget): Promise<Client> {
    await this.handshakes.take();
    try {
      return await openConnection(target, this.settings, this.jumps);
    } finally {
      this.handshakes.give();
    }
  }

  /** Forgets a broken connection; the next command on that node opens a fresh one. */
  private drop(slot: HostSlot, conn: PooledConnection, connectError?: unknown): void {
    if (conn.dead) return;
    conn.dead = true;
    clearTimeout(conn.idleTimer);
    this.idle.delete(conn);
    const index = slot.connections.indexOf(conn);
    if (index >= 0) slot.connections.splice(index, 1);
    conn.client?.end();
    for (const waiter of slot.waiters.splice(0)) {
      // A node that just refused or timed out a connection would only do it again, once per
      // queued command; a connection that closed after working is simply replaced.
      if (connectError !== undefined) waiter.fail(connectError);
      else waiter.wake(undefined);
    }
  }

  private release(slot: HostSlot, conn: PooledConnection): void {
    const next = !conn.dead && conn.active <= conn.channelLimit ? slot.waiters.shift() : undefined;
    if (next) {
      // Hand the channel over still counted, so a newcomer cannot overtake a queued command.
      next.wake(conn);
      return;
    }
    conn.active--;
    if (!conn.dead && conn.active === 0) {
      conn.idleTimer = setTimeout(() => this.drop(slot, conn), this.settings.idleTimeoutMs);
      conn.idleTimer.unref();
      this.idle.set(conn, slot);
      // Over the cap, the idle connection unused the longest goes now, not at its timeout.
      for (const [oldest, itsSlot] of this.idle) {
        if (this.idle.size <= this.settings.maxIdleConnections) break;
        this.idleEvicted++;
        this.drop(itsSlot, oldest);
      }
    }
  }
}
