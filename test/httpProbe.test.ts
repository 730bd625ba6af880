// The VIP probe against a real HTTP server on 127.0.0.1 serving nova's real version documents:
// stopped mid-run (failures counted by kind) and switched between releases (decreases counted).
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { microversionOf, runVipProbe, VipProbe } from '../activities/http/probe';
import { LatencyHistogram } from '../activities/http/latency';
import { ProbeStopEvents } from '../activities/http/probeStop';
import { activityEnv } from './helpers/activityEnv';

const DIR = '/work/shared/fixtures/nova-versions';
const doc = (file: string) => readFileSync(join(DIR, file), 'utf8');

interface FakeApi {
  url: string;
  port: number;
  release: string;
  mode: 'ok' | '503' | 'hang' | 'html';
  close(): Promise<void>;
  listen(): Promise<void>;
}

async function fakeApi(release: string, port = 0): Promise<FakeApi> {
  const sockets = new Set<Socket>();
  let server: Server;
  const api: FakeApi = {
    url: '',
    port,
    release,
    mode: 'ok',
    listen: () =>
      new Promise((resolve) => {
        server = createServer((req, res) => {
          if (api.mode === 'hang') return;
          if (api.mode === 'html')
            return void res
              .writeHead(200, { 'Content-Type': 'text/html', 'X-Lab-Node': 'apicomp' })
              .end('<html>It works!</html>');
          if (api.mode === '503')
            return void res.writeHead(503, { 'X-Lab-Node': 'apicomp' }).end('<html>503 Service Unavailable</html>');
          const headers = {
            'Content-Type': 'application/json',
            'X-Lab-Node': api.release === '31.0.0' ? 'apicomp' : 'ctl',
          };
          if (req.url === '/v2.1/') return void res.writeHead(200, headers).end(doc(`v21-${api.release}.json`));
          if (req.url === '/') return void res.writeHead(200, headers).end(doc(`root-${api.release}.json`));
          // keystonemiddleware's answer to a request without a token.
          res.writeHead(401, headers).end('{"error": {"code": 401, "title": "Unauthorized"}}');
        });
        server.on('connection', (s) => {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
        });
        server.listen(api.port, '127.0.0.1', () => {
          api.port = (server.address() as { port: number }).port;
          api.url = `http://127.0.0.1:${api.port}`;
          resolve();
        });
      }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        sockets.forEach((s) => s.destroy());
      }),
  };
  await api.listen();
  return api;
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
let api: FakeApi | undefined;
afterEach(async () => {
  await api?.close().catch(() => undefined);
  api = undefined;
});

describe('VipProbe', () => {
  it('counts connection failures while the backend is down, and nothing while it is up', async () => {
    api = await fakeApi('31.0.0');
    const probe = new VipProbe({
      url: api.url,
      paths: ['/', '/v2.1/'],
      ratePerSecond: 40,
      clients: 4,
      requestTimeoutMs: 1000,
      maxDurationMs: 20_000,
    });
    probe.start();
    await wait(700);
    expect(probe.snapshot().failedRequests).toBe(0);
    await api.close();
    await wait(500);
    await api.listen();
    await wait(700);
    const s = await probe.stop();
    expect(s.running).toBe(false);
    expect(s.stoppedBecause).toBe('stopped');
    expect(s.requests).toBeGreaterThan(50);
    expect(s.failedRequests).toBeGreaterThan(5);
    expect(s.failuresByKind.connection).toBe(s.failedRequests);
    expect(s.firstFailures.length).toBe(Math.min(20, s.failedRequests));
    expect(s.firstFailures[0]!.reason).toMatch(/ECONNREFUSED|ECONNRESET/);
    expect(s.versionDecreases).toBe(0);
    expect(s.maxMicroversionSeen).toBe('2.100');
    expect(s.requestsByBackend.apicomp).toBe(s.requests - s.failedRequests);
    expect(s.latencyMs.p50).toBeGreaterThan(0);
    expect(s.latencyMs.max).toBeGreaterThanOrEqual(s.latencyMs.p99);
    expect(s.durationSeconds).toBeGreaterThan(1.5);
  });

  it('counts 5xx answers and timeouts by kind', async () => {
    api = await fakeApi('31.0.0');
    const probe = new VipProbe({
      url: api.url,
      paths: ['/'],
      ratePerSecond: 20,
      clients: 2,
      requestTimeoutMs: 200,
      maxDurationMs: 20_000,
    });
    probe.start();
    api.mode = '503';
    await wait(400);
    api.mode = 'hang';
    await wait(700);
    api.mode = 'ok';
    await wait(400);
    const s = await probe.stop();
    expect(s.failuresByKind.http5xx).toBeGreaterThan(0);
    expect(s.failuresByKind.timeout).toBeGreaterThan(0);
    expect(s.firstFailures.find((f) => f.kind === 'http5xx')!.reason).toBe('HTTP 503 from apicomp');
    expect(s.failedRequests).toBe((s.failuresByKind.http5xx ?? 0) + (s.failuresByKind.timeout ?? 0));
  });

  it('counts a client seeing an older API after a newer one', async () => {
    api = await fakeApi('30.0.0');
    const probe = new VipProbe({
      url: api.url,
      paths: ['/', '/v2.1/'],
      ratePerSecond: 40,
      clients: 4,
      maxDurationMs: 20_000,
    });
    probe.start();
    await wait(400);
    api.release = '31.0.0';
    await wait(400);
    api.release = '30.0.0';
    await wait(400);
    const s = await probe.stop();
    expect(s.failedRequests).toBe(0);
    expect(s.maxMicroversionSeen).toBe('2.100');
    // Every client went 2.96 → 2.100 → 2.96: the step back is what a user would notice.
    expect(s.versionDecreases).toBeGreaterThanOrEqual(4);
    for (const c of s.perClient) {
      expect(c.versionsInOrder).toEqual(['2.96', '2.100', '2.96']);
      expect(c.maxMicroversion).toBe('2.100');
    }
    expect(Object.keys(s.requestsByBackend).sort()).toEqual(['apicomp', 'ctl']);
  });

  it('reads the max microversion from the headers on versioned paths when asking for latest', () => {
    expect(microversionOf('/v2.1/servers', '', { 'openstack-api-version': 'compute 2.100' }, true)).toBe('2.100');
    expect(microversionOf('/v2.1/servers', '', { 'x-openstack-nova-api-version': '2.96' }, true)).toBe('2.96');
    // Without `latest` the header echoes the version used (2.1), not the max.
    expect(microversionOf('/v2.1/servers', '', { 'openstack-api-version': 'compute 2.1' }, false)).toBeUndefined();
    expect(microversionOf('/', doc('root-33.0.0.json'), {}, true)).toBe('2.103');
  });

  it('counts 4xx answers and 200s that are not version documents as failures', async () => {
    api = await fakeApi('31.0.0');
    const probe = new VipProbe({
      url: api.url,
      paths: ['/v2.1/servers'],
      ratePerSecond: 20,
      clients: 1,
      maxDurationMs: 20_000,
    });
    probe.start();
    await wait(300);
    await probe.stop();
    api.mode = 'html';
    // 401 without a token: the probe's paths must be ones an anonymous client may GET.
    expect(probe.snapshot().failuresByKind).toEqual({ http4xx: probe.snapshot().requests });

    const html = new VipProbe({ url: api.url, paths: ['/'], ratePerSecond: 20, clients: 1, maxDurationMs: 20_000 });
    html.start();
    await wait(300);
    const s = await html.stop();
    expect(s.failuresByKind).toEqual({ invalidVersionDocument: s.requests });
    expect(s.firstFailures[0]!.reason).toBe('HTTP 200 without a version document from apicomp');
  });

  it('stops by itself at maxDurationMs', async () => {
    api = await fakeApi('31.0.0');
    const probe = new VipProbe({ url: api.url, paths: ['/'], ratePerSecond: 20, clients: 2, maxDurationMs: 400 });
    probe.start();
    const s = await probe.done;
    expect(s.stoppedBecause).toBe('maxDuration');
    expect(s.durationSeconds).toBeLessThan(1);
  });
});

describe('runVipProbe activity', () => {
  it('heartbeats aggregates and returns them when the workflow cancels it', async () => {
    api = await fakeApi('31.0.0');
    const env = activityEnv({ heartbeatTimeoutMs: 5000 });
    const running = env.run(runVipProbe, {
      url: api.url,
      paths: ['/'],
      ratePerSecond: 20,
      clients: 2,
      maxDurationMs: 60_000,
      heartbeatEveryMs: 200,
    });
    await wait(900);
    env.cancel();
    const s = await running;
    expect(s.stoppedBecause).toBe('cancelled');
    expect(s.requests).toBeGreaterThan(5);
    expect(env.beats.length).toBeGreaterThanOrEqual(3);
    expect(env.beats.at(-1)).toMatchObject({ running: true });
    expect(JSON.stringify(s).length).toBeLessThan(10_000);
  });

  // The workflow's stop reaches the probe by its sink's event where the task ran in this worker.
  // The query never says yes here, so only the event can end these runs (well inside 60 s).
  const run = { workflowId: 'wf-probe', runId: 'run-2' };
  const probeInput = (url: string) => ({
    url,
    paths: ['/'],
    ratePerSecond: 20,
    clients: 2,
    maxDurationMs: 60_000,
  });
  const never = async () => false;

  it('stops when its run asks by event, though the query has not said so yet', async () => {
    api = await fakeApi('31.0.0');
    const events = new ProbeStopEvents();
    const env = activityEnv({ workflowExecution: run });
    const asked: string[] = [];
    const running = env.run(
      (i: Parameters<typeof runVipProbe>[0]) => runVipProbe(i, async (id) => (asked.push(id), false), events),
      probeInput(api.url),
    );
    await wait(500);
    // Another run of the same workflow id (the lab demo reuses its id) must not stop this one.
    events.request(run.workflowId, 'run-1');
    await wait(300);
    const before = Date.now();
    events.request(run.workflowId, run.runId);
    const s = await running;
    expect(s.stoppedBecause).toBe('stopped');
    expect(s.durationSeconds).toBeGreaterThanOrEqual(0.7);
    expect(s.requests).toBeGreaterThan(5);
    // Ended by the event: no question could have answered yes.
    expect(asked.length).toBeLessThanOrEqual(1);
    expect(Date.now() - before).toBeLessThan(30_000);
  });

  it('a stop asked before the probe (re)started stops it at once; the query alone still stops it', async () => {
    api = await fakeApi('31.0.0');
    const events = new ProbeStopEvents();
    events.request(run.workflowId, run.runId);
    const early = await activityEnv({ workflowExecution: run }).run(
      (i: Parameters<typeof runVipProbe>[0]) => runVipProbe(i, never, events),
      probeInput(api.url),
    );
    expect(early.stoppedBecause).toBe('stopped');
    // No event (the workflow's task ran on another worker): the 2 s question ends it.
    const byQuery = await activityEnv({ workflowExecution: run }).run(
      (i: Parameters<typeof runVipProbe>[0]) => runVipProbe(i, async () => true, new ProbeStopEvents()),
      probeInput(api.url),
    );
    expect(byQuery.stoppedBecause).toBe('stopped');
    expect(byQuery.durationSeconds).toBeGreaterThanOrEqual(1.5);
  });

  it('ends at stopAfterMs', async () => {
    api = await fakeApi('31.0.0');
    const s = await activityEnv().run(runVipProbe, {
      url: api.url,
      paths: ['/'],
      ratePerSecond: 20,
      clients: 2,
      stopAfterMs: 300,
      maxDurationMs: 60_000,
    });
    expect(s.stoppedBecause).toBe('stopAfter');
  });
});

describe('LatencyHistogram', () => {
  it('reports percentiles within a bucket (1 %) of the truth', () => {
    const h = new LatencyHistogram();
    for (let i = 1; i <= 1000; i++) h.record(i);
    const s = h.summary();
    expect(s.p50).toBeGreaterThanOrEqual(500);
    expect(s.p50).toBeLessThanOrEqual(506);
    expect(s.p99).toBeGreaterThanOrEqual(990);
    expect(s.p99).toBeLessThanOrEqual(1000);
    expect(s.max).toBe(1000);
  });
});
