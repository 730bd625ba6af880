// The waits that end as soon as HAProxy's own counters prove their point (issue 16), against two
// real HAProxy 2.6 LBs on 127.0.33.0/24, and that each still detects what it waits for:
// - "UP": a server that comes back UP, then fails its next check;
// - "drained": a session that opens after the drain (a request carrying the persistence cookie,
//   which HAProxy still sends to a drained server).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { startHaproxy, stopHaproxy } from '../lab/haproxy';
import { createHaproxyActivities } from '../activities/haproxy/activities';
import type { LbTarget } from '../common/haproxy';
import { commands, HaproxyRuntime } from '../activities/haproxy/runtimeApi';
import { serverStats, type ServerStat } from '../activities/haproxy/stats';
import type { RemoteRunner } from '../activities/ssh/types';
import { failureOf } from './helpers/failures';

const BACKEND = 'nova-api';
const NET = '127.0.33';
const PORT = 18330;
const noRunner: RemoteRunner = {
  run: () => Promise.reject(new Error('no ssh in this test')),
  runDetached: () => Promise.reject(new Error('no ssh in this test')),
};
const acts = createHaproxyActivities({ runner: noRunner });
const root = mkdtempSync(join(tmpdir(), 'haproxy-proof-'));
const lbs: LbTarget[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Backend {
  name: string;
  address: string;
  checks: () => number;
  setHealthy: (h: boolean) => void;
  /** Healthy for one more check from each LB, unhealthy from the next one on. */
  passOnceThenFail: () => void;
  close: () => Promise<void>;
}

/** A stand-in nova-api on its own address: `GET /` is the health check, `/slow?ms=N` a request. */
async function backend(name: string, address: string): Promise<Backend> {
  let healthy = true;
  let checks = 0;
  let passesLeft: Map<string, number> | undefined;
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/') {
      checks++;
      const lb = String(req.headers['x-lb'] ?? '');
      let ok = healthy;
      if (passesLeft) {
        const left = passesLeft.get(lb) ?? 1;
        passesLeft.set(lb, left - 1);
        ok = left > 0;
      }
      // Decided on arrival; answered 3..15 ms later, so consecutive checks have different
      // check_duration values, as a real nova-api's do (measured on 2.6.12: 2..255 ms).
      const status = ok ? 200 : 503;
      setTimeout(() => res.writeHead(status).end(name), 3 + (checks % 5) * 3);
      return;
    }
    setTimeout(() => res.writeHead(200, { 'x-served-by': name }).end(name), Number(url.searchParams.get('ms') ?? 0));
  });
  await new Promise<void>((r) => server.listen(PORT, address, r));
  return {
    name,
    address,
    checks: () => checks,
    setHealthy: (h) => {
      healthy = h;
      passesLeft = undefined;
    },
    passOnceThenFail: () => (passesLeft = new Map()),
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

let servers: Record<string, Backend> = {};

/** One request through an LB's frontend, pinned to a server by its persistence cookie. */
function getPinned(lb: number, server: string, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: `${NET}.${11 + lb}`,
        port: PORT,
        path: `/slow?ms=${ms}`,
        agent: false,
        headers: { connection: 'close', cookie: `SRV=${server}` },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(String(res.headers['x-served-by'] ?? '')));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function stat(lb: LbTarget, server: string): Promise<ServerStat> {
  return serverStats(await new HaproxyRuntime(lb).one(commands.showStat(BACKEND)), BACKEND).get(server)!;
}

async function run<I, O>(fn: (input: I) => Promise<O>, input: I, onBeat?: () => void): Promise<O> {
  const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
  if (onBeat) env.on('heartbeat', onBeat);
  return env.run(fn, input);
}

const SERVERS: Array<[string, string]> = [
  ['api1', `${NET}.21`],
  ['api2', `${NET}.22`],
  ['api3', `${NET}.23`],
];

beforeAll(async () => {
  servers = Object.fromEntries(await Promise.all(SERVERS.map(async ([n, a]) => [n, await backend(n, a)] as const)));
  for (const [i, name] of ['lb1', 'lb2'].entries()) {
    const dir = join(root, name);
    // rise 2 fall 3 as HAProxy's defaults; checked every 200 ms except api3 (1.5 s), whose
    // stale UP between two checks the fallback hold has to cover.
    const config = `global
    stats socket ${dir}/admin.sock mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout check 2s
frontend vip
    bind ${NET}.${11 + i}:${PORT}
    default_backend ${BACKEND}
backend ${BACKEND}
    balance roundrobin
    cookie SRV insert indirect nocache
    option httpchk
    http-check send meth GET uri / hdr x-lb ${name}
    http-check expect status 200
${SERVERS.map(([n, a]) => `    server ${n} ${a}:${PORT} cookie ${n} check inter ${n === 'api3' ? '1500ms' : '200ms'} rise 2 fall 3`).join('\n')}
`;
    await startHaproxy({ dir, config });
    lbs.push({ node: name, socket: { via: 'unix', path: `${dir}/admin.sock` } });
  }
  for (const [n] of SERVERS)
    await run(acts.waitForServerUp, { lbs, backend: BACKEND, server: n, timeoutMs: 8000, pollMs: 50 });
}, 30_000);

afterAll(async () => {
  for (const name of ['lb1', 'lb2']) await stopHaproxy(join(root, name)).catch(() => undefined);
  await Promise.all(Object.values(servers).map((s) => s.close()));
  rmSync(root, { recursive: true, force: true });
});

async function cycle(server: string, mode: 'disable' | 'drain' | 'weight') {
  const { weights } = await run(acts.recordServerWeights, { lbs, backend: BACKEND, servers: [server] });
  await run(acts.drainApiServer, { lbs, backend: BACKEND, server, mode });
  return weights;
}

describe('waitForServerUp: UP proven by checks that ran after the enable', () => {
  it('out of maintenance ("UP 1/3"), fall-1 passed checks prove it, long before a 60 s hold', async () => {
    const weights = await cycle('api1', 'disable');
    await run(acts.enableApiServer, { lbs, backend: BACKEND, server: 'api1', weights });
    const out = await run(acts.waitForServerUp, {
      lbs,
      backend: BACKEND,
      server: 'api1',
      timeoutMs: 10_000,
      pollMs: 200,
      stableMs: 60_000,
    });
    expect(out.provenBy).toEqual({
      lb1: expect.stringMatching(/passed check/),
      lb2: expect.stringMatching(/passed check/),
    });
    expect(out.statuses).toEqual({ lb1: 'UP L7OK', lb2: 'UP L7OK' });
  });

  it('drained by `state drain` (health kept, reads UP at once): passed checks seen by their new check_duration prove it', async () => {
    const weights = await cycle('api2', 'drain');
    await run(acts.enableApiServer, { lbs, backend: BACKEND, server: 'api2', weights });
    const out = await run(acts.waitForServerUp, {
      lbs,
      backend: BACKEND,
      server: 'api2',
      timeoutMs: 10_000,
      pollMs: 50,
      stableMs: 60_000,
    });
    expect(out.provenBy).toEqual({
      lb1: expect.stringMatching(/passed check/),
      lb2: expect.stringMatching(/passed check/),
    });
  });

  it('a server that comes back UP out of maintenance, then fails its next check, is never taken as UP', async () => {
    const weights = await cycle('api2', 'disable');
    servers.api2!.setHealthy(false);
    await run(acts.enableApiServer, { lbs, backend: BACKEND, server: 'api2', weights });
    expect((await stat(lbs[0]!, 'api2')).status).toMatch(/^UP/);
    const f = await failureOf(
      run(acts.waitForServerUp, { lbs, backend: BACKEND, server: 'api2', timeoutMs: 1500, pollMs: 100 }),
    );
    expect(f.type).toBe('HaproxyServerNotUp');
    expect(f.message).toMatch(/lb1: DOWN L7STS/);
    servers.api2!.setHealthy(true);
    await run(acts.waitForServerUp, { lbs, backend: BACKEND, server: 'api2', timeoutMs: 10_000, pollMs: 100 });
  });

  it('drained by `state drain` (health kept): one passed check after the enable, then a failed one, is caught', async () => {
    const weights = await cycle('api1', 'drain');
    await run(acts.enableApiServer, { lbs, backend: BACKEND, server: 'api1', weights });
    // From the wait's first reading on, each LB's next check passes and every later one fails:
    // the pass is one the wait can see (a new check_duration), the failure comes after it.
    let armed = false;
    const wait = failureOf(
      run(
        acts.waitForServerUp,
        { lbs, backend: BACKEND, server: 'api1', timeoutMs: 2500, pollMs: 50, stableMs: 60_000 },
        () => {
          if (!armed) servers.api1!.passOnceThenFail();
          armed = true;
        },
      ),
    );
    const f = await wait;
    expect(f.type).toBe('HaproxyServerNotUp');
    expect(f.message).toMatch(/UP 2\/3 L7STS|DOWN L7STS|UP 1\/3 L7STS/);
    servers.api1!.setHealthy(true);
    await run(acts.waitForServerUp, { lbs, backend: BACKEND, server: 'api1', timeoutMs: 10_000, pollMs: 100 });
  });

  it('checked more slowly than the hold: a stale "UP L7OK" with no check since, then a failed check, is caught by the hold', async () => {
    const only = [lbs[0]!];
    const { weights } = await run(acts.recordServerWeights, { lbs: only, backend: BACKEND, servers: ['api3'] });
    await run(acts.drainApiServer, { lbs: only, backend: BACKEND, server: 'api3', mode: 'weight' });
    // Right after a passed check, the next one is 1.5 s away.
    const seen = servers.api3!.checks();
    while (servers.api3!.checks() === seen) await sleep(2);
    servers.api3!.setHealthy(false);
    await run(acts.enableApiServer, { lbs: only, backend: BACKEND, server: 'api3', weights });
    expect(await stat(only[0]!, 'api3')).toMatchObject({ status: 'UP', checkStatus: 'L7OK' });
    const f = await failureOf(
      run(acts.waitForServerUp, {
        lbs: only,
        backend: BACKEND,
        server: 'api3',
        timeoutMs: 2500,
        pollMs: 50,
        stableMs: 1700,
      }),
    );
    expect(f.type).toBe('HaproxyServerNotUp');
    expect(f.message).toMatch(/lb1: UP [12]\/3 L7STS/);
    servers.api3!.setHealthy(true);
    await run(acts.waitForServerUp, { lbs: only, backend: BACKEND, server: 'api3', timeoutMs: 10_000, pollMs: 100 });
  });
});

describe('waitForNoSessions: drained proven by counters', () => {
  const wait = (server: string, since: Record<string, number> | undefined, settleMs: number) =>
    run(acts.waitForNoSessions, {
      lbs,
      backend: BACKEND,
      server,
      settleMs,
      timeoutMs: 10_000,
      pollMs: 100,
      ...(since ? { since } : {}),
    });

  it('no session and stot unchanged since the drain: proven at the first reading, no settle', async () => {
    const drained = await run(acts.drainApiServer, { lbs, backend: BACKEND, server: 'api1', mode: 'drain' });
    expect(drained.alreadyDone).toBe(false);
    const since = drained.sessionsAtDrain!.api1!;
    expect(Object.keys(since).sort()).toEqual(['lb1', 'lb2']);
    const out = await wait('api1', since, 60_000);
    expect(out.provenBy).toBe('counters');
    expect(out.summary).toMatch(/none opened since the drain/);
  });

  it('a session that opens after the drain (persistence cookie) is detected: the settle time is waited, from the last new session', async () => {
    // The drain above left api1 drained; re-read its stot as the drain's exchange does.
    const drained = await run(acts.drainApiServer, { lbs, backend: BACKEND, server: 'api1', mode: 'drain' });
    expect(drained.alreadyDone).toBe(true);
    const since = drained.sessionsAtDrain!.api1!;
    // After the drain, a request pinned to api1 still reaches it, and is over before the wait starts.
    expect(await getPinned(0, 'api1', 20)).toBe('api1');
    expect((await stat(lbs[0]!, 'api1')).scur).toBe(0);
    const started = Date.now();
    const waiting = wait('api1', since, 1500);
    // Another one while the wait counts its settle: it restarts the count.
    await sleep(700);
    expect(await getPinned(1, 'api1', 10)).toBe('api1');
    const out = await waiting;
    expect(out.provenBy).toBe('settle');
    expect(out.summary).toMatch(/a session opened after the drain/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(700 + 1500);
  });

  it('a short session between two readings restarts the settle even though scur reads 0 at both', async () => {
    const started = Date.now();
    const waiting = wait('api1', undefined, 1200);
    await sleep(500);
    await getPinned(0, 'api1', 0);
    const out = await waiting;
    expect(out.provenBy).toBe('settle');
    expect(Date.now() - started).toBeGreaterThanOrEqual(500 + 1200);
  });
});
