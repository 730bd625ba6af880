// The README's main job: a full upgrade of the built-in lab, with every gate approved
// automatically, and a report of what API clients saw through the VIP while it ran.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createHaproxyActivities } from '../activities/haproxy/activities';
import { VipProbe, type ProbeSnapshot } from '../activities/http/probe';
import { getIniOption } from '../activities/nova/ini';
import { SshPool } from '../activities/ssh/pool';
import { connectClient, resolveConnection } from './connection';
import { startDevServer } from './devServer';
import { startUpgrade } from './upgrades';
import { watchUpgrade } from './watch';
import { changedLines, progressTable } from './render';
import { loadInventory } from '../inventory/load';
import { PHASES, type UpgradeResult } from '../common/messages';
import { startWorkerProcess } from '../worker/process';
import { labDown, labEvents, labStatus, labUp, type LabInfo } from '../lab/lab';
import { realProbeAuth } from '../lab/labInventory';
import { realFiles } from '../lab/real/configs';
import { labPeakRss } from '../lab/rss';
import { httpRequest } from '../activities/http/get';
import { issueToken, readCloudCredentials } from '../activities/http/keystone';

export interface DemoOptions {
  stateDir: string;
  mode: 'rolling' | 'monotonic';
  port?: number;
  uiPort?: number;
  subnet?: string;
  /** Requests per second of the harness's own probe, independent of the workflow's. */
  probeRate?: number;
  /** standin (the default, seconds to start) or real (nova, placement and keystone from their releases). */
  nova?: 'standin' | 'real';
  out: (line: string) => void;
}

export interface DemoSummary {
  workflowId: string;
  status: string;
  mode: 'rolling' | 'monotonic';
  nova: 'standin' | 'real';
  requests: number;
  /** Requests sent with a keystone token (the real lab's probe), token requests not included. */
  authenticatedRequests?: number;
  failedRequests: number;
  failuresByKind: ProbeSnapshot['failuresByKind'];
  versionDecreases: number;
  latencyMs: ProbeSnapshot['latencyMs'];
  workflowProbe?: UpgradeResult['probe'];
  haproxyRetries: number;
  haproxyRedispatches: number;
  haproxyConnectionErrors: number;
  haproxyResponseErrors: number;
  nodes: { name: string; version: string }[];
  apiRestarts: Record<string, number>;
  computeRpcPinned: Record<string, boolean>;
  onlineMigrations: string;
  alreadyDoneSteps: number;
  durationSeconds: number;
  /** From the upgrade's start to its result: the upgrade time, without Temporal, lab or worker start-up. */
  upgradeSeconds: number;
  /** labUp's own wall time. */
  labUpSeconds: number;
  /** The lab's peak memory during the upgrade, sampled every 2 s (lab/rss.ts). */
  peakMemory: { rssMiB: number; pssMiB: number; processes: number };
  uiUrl: string;
}

/** HAProxy's own counters, read through the one runtime-API client on each lab LB's socket. */
async function haproxyCounters(lab: LabInfo, backend: string) {
  const pool = new SshPool();
  try {
    const acts = createHaproxyActivities({ runner: pool });
    const r = await acts.readBackendCounters({
      lbs: lab.lbs.map((l) => ({ node: l.node, socket: { via: 'unix' as const, path: l.socket } })),
      backend,
    });
    const all = Object.values(r.counters).flatMap((servers) => Object.values(servers));
    const sum = (k: 'wretr' | 'wredis' | 'econ' | 'eresp') => all.reduce((n, c) => n + c[k], 0);
    return {
      retries: sum('wretr'),
      redispatches: sum('wredis'),
      connectionErrors: sum('econ'),
      responseErrors: sum('eresp'),
    };
  } finally {
    await pool.close();
  }
}

export async function runLabDemo(opts: DemoOptions): Promise<DemoSummary> {
  const say = opts.out;
  const started = Date.now();
  const server = await startDevServer({
    stateDir: join(opts.stateDir, 'temporal'),
    port: opts.port ?? 7233,
    uiPort: opts.uiPort ?? 8233,
  });
  say(`Temporal ${server.alreadyRunning ? 'already running' : 'started'} at ${server.address}; Web UI ${server.uiUrl}`);

  const labDir = join(opts.stateDir, 'lab');
  // Every demo upgrades a fresh lab: an upgraded one would only show "already done".
  await labDown(labDir);
  if (existsSync(labDir)) rmSync(labDir, { recursive: true, force: true });
  const nova = opts.nova ?? 'standin';
  if (nova === 'real')
    say('bringing up the real-nova lab: keystone, placement and nova from their releases on MariaDB and RabbitMQ');
  const lab = await labUp({ stateDir: labDir, nova, ...(opts.subnet ? { subnet: opts.subnet } : {}) });
  say(`lab up in ${lab.upMs} ms: ${lab.nodes.map((n) => `${n.name} ${n.address}`).join(', ')}; VIP ${lab.vipUrl}`);

  const worker = await startWorkerProcess({ dir: opts.stateDir, address: server.address, namespace: server.namespace });
  say(`worker ${worker.alreadyRunning ? 'already running' : 'started'} (pid ${worker.pid}, log ${worker.log})`);

  const inv = loadInventory(lab.inventoryPath);
  inv.haproxy.switchover = opts.mode;
  const conn = resolveConnection({ address: server.address, namespace: server.namespace });
  const client = await connectClient(conn);
  const clouds = realFiles(lab.nodes[0]!.root).clouds;
  if (nova === 'real') {
    // A fresh uwsgi worker answers its first authenticated requests in seconds (it loads
    // keystonemiddleware and nova's policy): warm both nova-apis before the probe counts, as
    // test/realLabSlurp.test.ts does. Cold workers are not what the demo measures.
    const token = await issueToken(readCloudCredentials(clouds, 'devstack'), 60_000);
    for (let i = 0; i < 8; i++)
      for (const path of ['/v2.1/servers/detail', '/v2.1/flavors'])
        await httpRequest('GET', `${lab.vipUrl}${path}`, { timeoutMs: 60_000, headers: { 'X-Auth-Token': token.id } });
  }
  // The real nova-api (two uwsgi workers a node) serves about 8 authenticated requests a second
  // beside the workflow's own probe on 2 cores (docs/real-lab.md); the stand-ins take 40.
  const probe = new VipProbe(
    nova === 'real'
      ? {
          url: lab.vipUrl,
          paths: ['/', '/v2.1/'],
          auth: realProbeAuth(clouds),
          ratePerSecond: opts.probeRate ?? 8,
          clients: 4,
          requestTimeoutMs: 10_000,
          maxDurationMs: 60 * 60_000,
        }
      : {
          url: lab.vipUrl,
          paths: ['/', '/v2.1/', '/v2.1/flavors'],
          ratePerSecond: opts.probeRate ?? 40,
          clients: 4,
          requestTimeoutMs: 10_000,
          maxDurationMs: 30 * 60_000,
        },
  );
  const memory = labPeakRss(labDir, 2000);
  probe.start();
  const upgradeStarted = Date.now();
  const handle = await startUpgrade(client, conn.taskQueue, inv, { autoApprove: [...PHASES] });
  say(
    `started ${handle.workflowId} (${opts.mode} switch-over); every gate is approved automatically (--auto-approve all)`,
  );
  say(`follow it in the Web UI: ${server.uiUrl}/namespaces/${server.namespace}/workflows/${handle.workflowId}`);
  await watchUpgrade(client, handle.workflowId, {
    tty: false,
    untilEnd: true,
    render: progressTable,
    changes: changedLines,
    out: (l) => say(`  ${l}`),
  });
  const result = (await handle.result()) as UpgradeResult;
  const upgradeSeconds = Math.round((Date.now() - upgradeStarted) / 100) / 10;
  const snap = await probe.stop();
  const peak = memory.stop();
  const counters = await haproxyCounters(lab, inv.haproxy.backend);
  const status = labStatus(labDir);
  const apiRestarts = Object.fromEntries(
    lab.nodes
      .filter((n) => n.apiUrl)
      .map((n) => [
        n.name,
        labEvents(labDir, n.name).filter((e) => e.unit === 'devstack@n-api' && e.verb === 'start').length - 1,
      ]),
  );
  const computeRpcPinned = Object.fromEntries(
    inv.nodes.map((n) => [
      n.name,
      n.configFiles.every((f) => getIniOption(readFileSync(f, 'utf8'), 'upgrade_levels', 'compute') === 'auto'),
    ]),
  );
  const migrations = result.steps.find((s) => s.id === 'online-migrations');
  await client.connection.close();
  return {
    workflowId: handle.workflowId,
    status: result.status,
    mode: opts.mode,
    nova,
    requests: snap.requests,
    ...(snap.authenticatedRequests !== undefined ? { authenticatedRequests: snap.authenticatedRequests } : {}),
    failedRequests: snap.failedRequests,
    failuresByKind: snap.failuresByKind,
    versionDecreases: snap.versionDecreases,
    latencyMs: snap.latencyMs,
    ...(result.probe ? { workflowProbe: result.probe } : {}),
    haproxyRetries: counters.retries,
    haproxyRedispatches: counters.redispatches,
    haproxyConnectionErrors: counters.connectionErrors,
    haproxyResponseErrors: counters.responseErrors,
    nodes: status.nodes.map((n) => ({ name: n.name, version: n.codeVersion })),
    apiRestarts,
    computeRpcPinned,
    onlineMigrations: migrations ? `${migrations.status}: ${migrations.summary ?? ''}` : 'not run',
    alreadyDoneSteps: result.steps.filter((s) => s.alreadyDone).length,
    durationSeconds: Math.round((Date.now() - started) / 100) / 10,
    upgradeSeconds,
    labUpSeconds: Math.round(lab.upMs / 100) / 10,
    peakMemory: {
      rssMiB: Math.round(peak.peakRssBytes / 2 ** 20),
      pssMiB: Math.round(peak.peakPssBytes / 2 ** 20),
      processes: peak.peakProcesses,
    },
    uiUrl: `${server.uiUrl}/namespaces/${server.namespace}/workflows/${handle.workflowId}`,
  };
}

export function summaryTable(s: DemoSummary): string {
  const rows: [string, string][] = [
    [
      'upgrade',
      `${s.workflowId}: ${s.status} in ${s.upgradeSeconds} s of upgrade, ${s.durationSeconds} s in all, lab up ${s.labUpSeconds} s (${s.nova} nova, ${s.mode} switch-over)`,
    ],
    [
      'requests through the VIP',
      `${s.requests} (harness probe${s.authenticatedRequests !== undefined ? `, ${s.authenticatedRequests} with a keystone token` : ''}), ${s.workflowProbe?.requests ?? '-'} (workflow probe)`,
    ],
    [
      'failed requests',
      `${s.failedRequests}${s.failedRequests ? ` ${JSON.stringify(s.failuresByKind)}` : ''} (workflow probe: ${s.workflowProbe?.failedRequests ?? '-'})`,
    ],
    ['latency p50/p95/p99/max', `${s.latencyMs.p50}/${s.latencyMs.p95}/${s.latencyMs.p99}/${s.latencyMs.max} ms`],
    ['clients that saw the API version go down', String(s.versionDecreases)],
    ['HAProxy retries / redispatches', `${s.haproxyRetries} / ${s.haproxyRedispatches}`],
    ['HAProxy connection / response errors', `${s.haproxyConnectionErrors} / ${s.haproxyResponseErrors}`],
    ['nova on each node', s.nodes.map((n) => `${n.name} ${n.version}`).join(', ')],
    [
      'nova-api restarts',
      Object.entries(s.apiRestarts)
        .map(([n, c]) => `${n} ${c}`)
        .join(', '),
    ],
    [
      '[upgrade_levels] compute = auto',
      Object.entries(s.computeRpcPinned)
        .map(([n, p]) => `${n} ${p ? 'yes' : 'NO'}`)
        .join(', '),
    ],
    ['online data migrations', s.onlineMigrations],
    [
      "the lab's peak memory",
      `${s.peakMemory.rssMiB} MiB RSS summed, ${s.peakMemory.pssMiB} MiB PSS, ${s.peakMemory.processes} processes`,
    ],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n');
}
