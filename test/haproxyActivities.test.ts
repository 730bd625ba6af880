// The HAProxy activities against two real HAProxy 2.6 LBs (one reached over its unix socket,
// one over TCP) in front of small Node backends, run in MockActivityEnvironment.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { startHaproxy, stopHaproxy } from '../lab/haproxy';
import { createHaproxyActivities, type SessionCount } from '../activities/haproxy/activities';
import { type DrainMode, type LbTarget } from '../common/haproxy';
import { commands, HaproxyRuntime } from '../activities/haproxy/runtimeApi';
import { parseServersState, serverStats, type ServerStat } from '../activities/haproxy/stats';
import type { RemoteRunner } from '../activities/ssh/types';
import { freePort, get, haproxyLbConfig, startBackends, type Backend, type Reply } from './helpers/backends';
import { failureOf } from './helpers/failures';

const BACKEND = 'nova-api';
const SERVERS = ['api1', 'api2', 'api3', 'api4'];
const noRunner: RemoteRunner = {
  run: () => Promise.reject(new Error('no ssh in this test')),
  runDetached: () => Promise.reject(new Error('no ssh in this test')),
};

const root = mkdtempSync(join(tmpdir(), 'haproxy-activities-'));
let backends: Record<string, Backend>;
const lbs: LbTarget[] = [];
const frontends: number[] = [];
const sent: string[] = [];
const acts = createHaproxyActivities({ runner: noRunner, onSend: (_lb, payload) => sent.push(payload) });
const [lb1, lb2] = [() => lbs[0]!, () => lbs[1]!];

async function run<I, O>(fn: (input: I) => Promise<O>, input: I, beats?: unknown[]): Promise<O> {
  // Failures are what several tests expect; the default logger would print each as a warning.
  const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
  if (beats) env.on('heartbeat', (d: unknown) => beats.push(d));
  return env.run(fn, input);
}

async function stat(lb: LbTarget, server: string): Promise<ServerStat> {
  return serverStats(await new HaproxyRuntime(lb).one(commands.showStat(BACKEND)), BACKEND).get(server)!;
}

async function adminState(lb: LbTarget, server: string): Promise<number> {
  return parseServersState(await new HaproxyRuntime(lb).one(commands.showServersState(BACKEND))).find(
    (s) => s.server === server,
  )!.adminState;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const upInput = (server: string, over: { timeoutMs?: number; stableMs?: number; lbs?: LbTarget[] } = {}) => ({
  lbs,
  backend: BACKEND,
  server,
  timeoutMs: 8000,
  pollMs: 50,
  stableMs: 0,
  ...over,
});

beforeAll(async () => {
  const list = await startBackends(SERVERS);
  backends = Object.fromEntries(list.map((b) => [b.name, b]));
  for (const name of ['lb1', 'lb2']) {
    const dir = join(root, name);
    const tcpPort = await freePort();
    const frontendPort = await freePort();
    frontends.push(frontendPort);
    // api4 is checked slowly, to catch a restarted server still reading UP between two checks.
    const servers = list.map((b) => ({
      name: b.name,
      port: b.port,
      weight: 37,
      ...(b.name === 'api4' ? { inter: '1500ms' } : {}),
    }));
    await startHaproxy({
      dir,
      config: haproxyLbConfig({ name, dir, frontendPort, tcpPort, backend: BACKEND, servers }),
    });
    lbs.push(
      name === 'lb1'
        ? { node: name, socket: { via: 'unix', path: join(dir, 'admin.sock') } }
        : { node: name, socket: { via: 'tcp', host: '127.0.0.1', port: tcpPort } },
    );
  }
  await run(acts.waitForServerUp, upInput('api1'));
  for (const s of SERVERS) await run(acts.waitForServerUp, upInput(s));
});

afterAll(async () => {
  await Promise.all(['lb1', 'lb2'].map((n) => stopHaproxy(join(root, n))));
  await Promise.all(Object.values(backends).map((b) => b.close()));
  rmSync(root, { recursive: true, force: true });
});

describe('preflight', () => {
  it('passes when every LB is reachable at level admin and every server is UP', async () => {
    const out = await run(acts.checkLoadBalancers, { lbs, backend: BACKEND, servers: SERVERS });
    expect(out.levels).toEqual({ lb1: 'admin', lb2: 'admin' });
  });

  it('names an operator-level socket and a missing server, changing nothing', async () => {
    const operator: LbTarget = {
      node: 'lb1-operator',
      socket: { via: 'unix', path: join(root, 'lb1', 'operator.sock') },
    };
    const f = await failureOf(
      run(acts.checkLoadBalancers, { lbs: [operator, lb2()], backend: BACKEND, servers: ['api1', 'api9'] }),
    );
    expect(f.type).toBe('HaproxyPreflightFailed');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('lb1-operator: unix socket');
    expect(f.message).toContain('grants level operator, draining needs level admin');
    expect(f.message).toContain('lb2: backend nova-api has no server api9');
  });
});

describe('drain and enable', () => {
  const expected: Record<DrainMode, Partial<ServerStat>> = {
    weight: { status: 'UP', weight: 0 },
    disable: { status: 'MAINT', weight: 37 },
    // state drain leaves the weight column alone: only status tells.
    drain: { status: 'DRAIN', weight: 37 },
  };

  it.each(['weight', 'disable', 'drain'] as const)(
    'mode %s sets the expected state on every LB, twice is alreadyDone, enable restores the recorded weight',
    async (mode) => {
      const { weights } = await run(acts.recordServerWeights, { lbs, backend: BACKEND, servers: SERVERS });
      expect(weights).toEqual({
        lb1: { api1: 37, api2: 37, api3: 37, api4: 37 },
        lb2: { api1: 37, api2: 37, api3: 37, api4: 37 },
      });

      const first = await run(acts.drainApiServer, { lbs, backend: BACKEND, server: 'api1', mode });
      expect(first.alreadyDone).toBe(false);
      for (const lb of lbs) expect(await stat(lb, 'api1')).toMatchObject(expected[mode]);

      sent.length = 0;
      const second = await run(acts.drainApiServer, { lbs, backend: BACKEND, server: 'api1', mode });
      expect(second.alreadyDone).toBe(true);
      expect(second.summary).toMatch(/lb1: already (weight|maint|drain)/);
      expect(sent.some((p) => p.includes('set server'))).toBe(false);

      const enabled = await run(acts.enableApiServer, { lbs, backend: BACKEND, server: 'api1', weights });
      expect(enabled.alreadyDone).toBe(false);
      for (const lb of lbs) {
        expect((await stat(lb, 'api1')).weight).toBe(37);
        expect(await adminState(lb, 'api1')).toBe(0);
      }
      expect((await run(acts.enableApiServer, { lbs, backend: BACKEND, server: 'api1', weights })).alreadyDone).toBe(
        true,
      );
      await run(acts.waitForServerUp, upInput('api1'));
    },
  );

  it('enable restores the weight that was recorded, not the config file one', async () => {
    const admin = new HaproxyRuntime(lb1());
    await admin.one(commands.setWeight(BACKEND, 'api2', 20));
    const { weights } = await run(acts.recordServerWeights, { lbs, backend: BACKEND, servers: ['api2'] });
    expect(weights).toEqual({ lb1: { api2: 20 }, lb2: { api2: 37 } });
    await run(acts.drainApiServer, { lbs, backend: BACKEND, server: 'api2', mode: 'weight' });

    // A retried recording after the weight drain must not record 0: it says so and takes iweight.
    const again = await run(acts.recordServerWeights, { lbs, backend: BACKEND, servers: ['api2'] });
    expect(again.weights).toEqual({ lb1: { api2: 37 }, lb2: { api2: 37 } });
    expect(again.notes.join('\n')).toContain(
      'lb1: nova-api/api2 is already at weight 0; recording its configured weight 37',
    );

    await run(acts.enableApiServer, { lbs, backend: BACKEND, server: 'api2', weights });
    expect((await stat(lb1(), 'api2')).weight).toBe(20);
    expect((await stat(lb2(), 'api2')).weight).toBe(37);
    await admin.one(commands.setWeight(BACKEND, 'api2', 37));
  });

  it('enable without a recorded weight refuses to guess', async () => {
    const f = await failureOf(
      run(acts.enableApiServer, { lbs, backend: BACKEND, server: 'api1', weights: { lb1: { api1: 37 } } }),
    );
    expect(f.type).toBe('HaproxyNoRecordedWeight');
    expect(f.message).toContain('on LB lb2; refusing to guess');
  });

  it('switchover enables the new server and drains the old ones in one exchange per LB', async () => {
    const { weights } = await run(acts.recordServerWeights, { lbs, backend: BACKEND, servers: SERVERS });
    await run(acts.drainApiServer, { lbs, backend: BACKEND, server: 'api1', mode: 'drain' });
    sent.length = 0;
    const out = await run(acts.switchOverApiServers, {
      lbs,
      backend: BACKEND,
      enable: 'api1',
      drain: ['api2', 'api3'],
      mode: 'drain',
      weights,
    });
    expect(out.alreadyDone).toBe(false);
    // The same exchange reads stot back: the count when the drains took effect.
    expect(sent.filter((p) => p.includes('set server'))).toEqual([
      'set server nova-api/api1 state ready;show cli level;set server nova-api/api2 state drain;show cli level;set server nova-api/api3 state drain;show cli level;show stat nova-api 4 -1;show cli level\n',
      'set server nova-api/api1 state ready;show cli level;set server nova-api/api2 state drain;show cli level;set server nova-api/api3 state drain;show cli level;show stat nova-api 4 -1;show cli level\n',
    ]);
    for (const lb of lbs) {
      expect((await stat(lb, 'api2')).status).toBe('DRAIN');
      expect(await adminState(lb, 'api1')).toBe(0);
    }
    expect(
      (
        await run(acts.switchOverApiServers, {
          lbs,
          backend: BACKEND,
          enable: 'api1',
          drain: ['api2', 'api3'],
          mode: 'drain',
          weights,
        })
      ).alreadyDone,
    ).toBe(true);
    for (const s of ['api2', 'api3']) await run(acts.enableApiServer, { lbs, backend: BACKEND, server: s, weights });
    for (const s of ['api1', 'api2', 'api3']) await run(acts.waitForServerUp, upInput(s));
  });
});

describe('waitForServerUp', () => {
  it('a healthy server reads "UP 1/3" right after state ready; the activity waits for exact UP', async () => {
    const { weights } = await run(acts.recordServerWeights, { lbs, backend: BACKEND, servers: ['api2'] });
    await run(acts.drainApiServer, { lbs, backend: BACKEND, server: 'api2', mode: 'disable' });
    await run(acts.enableApiServer, { lbs, backend: BACKEND, server: 'api2', weights });
    expect((await stat(lb1(), 'api2')).status).toBe('UP 1/3');
    const beats: unknown[] = [];
    const out = await run(acts.waitForServerUp, upInput('api2'), beats);
    expect(out.statuses).toEqual({ lb1: 'UP L7OK', lb2: 'UP L7OK' });
    expect(JSON.stringify(beats[0])).toContain('UP 1/3');
  });

  it('a server enabled while down reads UP (1/3) until its first failed check; the activity does not return', async () => {
    const { weights } = await run(acts.recordServerWeights, { lbs, backend: BACKEND, servers: ['api3'] });
    await run(acts.drainApiServer, { lbs, backend: BACKEND, server: 'api3', mode: 'disable' });
    backends.api3!.setHealthy(false);
    await run(acts.enableApiServer, { lbs, backend: BACKEND, server: 'api3', weights });
    expect((await stat(lb1(), 'api3')).status).toMatch(/^UP/);
    const f = await failureOf(run(acts.waitForServerUp, upInput('api3', { timeoutMs: 1200 })));
    expect(f.type).toBe('HaproxyServerNotUp');
    expect(f.message).toMatch(/lb1: DOWN L7STS/);
    backends.api3!.setHealthy(true);
    await run(acts.waitForServerUp, upInput('api3'));
  });

  it('a weight-drained server restarted between two checks reads exact "UP L7OK"; stableMs covering the check interval catches it', async () => {
    const only = [lb1()];
    const { weights } = await run(acts.recordServerWeights, { lbs: only, backend: BACKEND, servers: ['api4'] });
    await run(acts.drainApiServer, { lbs: only, backend: BACKEND, server: 'api4', mode: 'weight' });
    // Right after a passed check, the next one is 1.5 s away.
    const seen = backends.api4!.lastCheckAt('lb1');
    while (backends.api4!.lastCheckAt('lb1') === seen) await sleep(5);
    backends.api4!.setHealthy(false);
    await run(acts.enableApiServer, { lbs: only, backend: BACKEND, server: 'api4', weights });
    expect(await stat(lb1(), 'api4')).toMatchObject({ status: 'UP', checkStatus: 'L7OK' });
    // Without a stable window the stale UP is taken at face value.
    expect((await run(acts.waitForServerUp, upInput('api4', { lbs: only }))).statuses).toEqual({ lb1: 'UP L7OK' });
    const f = await failureOf(
      run(acts.waitForServerUp, upInput('api4', { lbs: only, stableMs: 1700, timeoutMs: 2500 })),
    );
    expect(f.type).toBe('HaproxyServerNotUp');
    expect(f.message).toMatch(/lb1: UP 2\/3 L7STS/);
    backends.api4!.setHealthy(true);
    await run(acts.waitForServerUp, upInput('api4', { timeoutMs: 10_000 }));
  });
});

describe('draining with requests in flight', () => {
  it('long requests finish on the drained server, new ones avoid it, no 5xx, and the timeout shuts nothing down', async () => {
    const { weights } = await run(acts.recordServerWeights, { lbs, backend: BACKEND, servers: ['api1'] });
    const before = await run(acts.readBackendCounters, { lbs, backend: BACKEND });
    const servedBefore = backends.api1!.served();
    const long: Array<Promise<Reply>> = [];
    for (let i = 0; i < 48; i++) long.push(get(frontends[i % 2]!, '/slow?ms=1500'));
    await sleep(300);
    expect(backends.api1!.inFlight()).toBeGreaterThan(0);

    await run(acts.drainApiServer, { lbs, backend: BACKEND, server: 'api1', mode: 'drain' });
    const timeout = await failureOf(
      run(acts.waitForNoSessions, { lbs, backend: BACKEND, server: 'api1', settleMs: 200, timeoutMs: 300, pollMs: 50 }),
    );
    expect(timeout.type).toBe('HaproxyDrainTimeout');
    expect(timeout.nonRetryable).toBe(true);
    const counts = (timeout.details?.[0] as { counts: SessionCount[] }).counts;
    expect(counts.map((c) => c.lb)).toEqual(['lb1', 'lb2']);
    expect(counts.reduce((n, c) => n + c.scur, 0)).toBeGreaterThan(0);

    const fresh = await Promise.all(Array.from({ length: 40 }, (_, i) => get(frontends[i % 2]!, '/slow?ms=20')));
    expect(fresh.every((r) => r.status === 200)).toBe(true);
    expect(fresh.filter((r) => r.servedBy === 'api1')).toEqual([]);

    const beats: unknown[] = [];
    const done = await run(
      acts.waitForNoSessions,
      { lbs, backend: BACKEND, server: 'api1', settleMs: 300, timeoutMs: 10_000, pollMs: 100 },
      beats,
    );
    expect(done.counts.every((c) => c.scur === 0 && c.qcur === 0)).toBe(true);
    expect(JSON.stringify(beats[0])).toMatch(/"lb":"lb1","scur":[1-9]/);

    const replies = await Promise.all(long);
    expect(replies.filter((r) => r.status !== 200)).toEqual([]);
    expect(replies.filter((r) => r.servedBy === 'api1').length).toBe(backends.api1!.served() - servedBefore);
    expect(replies.filter((r) => r.servedBy === 'api1').length).toBeGreaterThan(0);

    const after = await run(acts.readBackendCounters, { lbs, backend: BACKEND });
    for (const lb of ['lb1', 'lb2']) {
      for (const s of SERVERS) {
        const [a, b] = [after.counters[lb]![s]!, before.counters[lb]![s]!];
        expect({
          lb,
          s,
          econ: a.econ - b.econ,
          eresp: a.eresp - b.eresp,
          wretr: a.wretr - b.wretr,
          wredis: a.wredis - b.wredis,
        }).toEqual({ lb, s, econ: 0, eresp: 0, wretr: 0, wredis: 0 });
      }
      expect(after.counters[lb]!.api1!.status).toBe('DRAIN');
    }

    await run(acts.enableApiServer, { lbs, backend: BACKEND, server: 'api1', weights });
    await run(acts.waitForServerUp, upInput('api1'));
    const back = await Promise.all(Array.from({ length: 16 }, (_, i) => get(frontends[i % 2]!, '/slow?ms=20')));
    expect(back.some((r) => r.servedBy === 'api1')).toBe(true);
  });

  it("shutdownSessions cuts the sessions still on the server, on the operator's choice", async () => {
    const { weights } = await run(acts.recordServerWeights, { lbs, backend: BACKEND, servers: ['api2'] });
    const long = Array.from({ length: 12 }, () => get(frontends[0]!, '/slow?ms=2500').catch((e: Error) => e));
    await sleep(300);
    await run(acts.drainApiServer, { lbs, backend: BACKEND, server: 'api2', mode: 'drain' });
    const out = await run(acts.shutdownSessions, { lbs, backend: BACKEND, server: 'api2' });
    expect(out.summary).toMatch(/lb1 [1-9]\d* session\(s\) shut down/);
    await run(acts.waitForNoSessions, {
      lbs,
      backend: BACKEND,
      server: 'api2',
      settleMs: 100,
      timeoutMs: 1000,
      pollMs: 50,
    });
    const replies = await Promise.all(long);
    // The cut requests never got api2's answer; the others finished on their servers.
    expect(replies.filter((r) => !(r instanceof Error) && r.servedBy === 'api2')).toEqual([]);
    expect(replies.filter((r) => r instanceof Error || r.status !== 200).length).toBeGreaterThan(0);
    await run(acts.enableApiServer, { lbs, backend: BACKEND, server: 'api2', weights });
    await run(acts.waitForServerUp, upInput('api2'));
  });
});
