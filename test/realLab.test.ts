// The upgrade against real OpenStack: nova 33.0.2 → 34.0.0, placement 15.0.0 → 16.0.0 and
// keystone 30.0.0 from their releases, on MariaDB and RabbitMQ, driven from the CLI through a
// real worker with the default command templates (only installCode is the lab's), while a
// probe sends requests through the VIP. Needs the venvs of scripts/openstack-venvs.sh (the
// lab builds them if missing) and the apt packages of scripts/install.sh.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { createHaproxyActivities } from '../activities/haproxy/activities';
import { VipProbe } from '../activities/http/probe';
import { SshPool } from '../activities/ssh/pool';
import { labDown, labUp, type LabInfo } from '../lab/lab';
import { NOVA_UNITS, nodeLayout } from '../lab/node/layout';
import { readUnitFile } from '../lab/node/units';
import { backingPids, mariadbQuery } from '../lab/real/backing';
import { realFiles } from '../lab/real/configs';
import { backingDirs, runNodeBin, venvRoot } from '../lab/real/realLab';
import type { Progress, UpgradeResult } from '../common/messages';
import { startWorkerProcess, stopWorkerProcess } from '../worker/process';
import { sharedTemporal } from './temporalEnv';
import { runCli, type CliRun } from './helpers/cli';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'real-lab-'));
// RabbitMQ runs as the rabbitmq user, which must traverse the lab's directories.
chmodSync(dir, 0o755);
const stateDir = join(dir, 'lab');
const taskQueue = `real-lab-${randomUUID()}`;
const FROM = '33.0.2';
const TO = '34.0.0';
let address: string;
let lab: LabInfo;
let labUpMs = 0;

function cli(...args: string[]): Promise<CliRun> {
  return runCli([...args, '--address', address, '--task-queue', taskQueue], { NOVA_UPGRADE_OPERATOR: 'test-operator' });
}

/** Resident memory of every process the lab started (its marker is in their environment). */
function labRssBytes(): number {
  const marker = `\0NOVA_LAB_STATE=${stateDir}\0`;
  let total = 0;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (!`\0${readFileSync(`/proc/${p}/environ`, 'utf8')}`.includes(marker)) continue;
      const rss = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      total += rss ? Number(rss[1]) * 1024 : 0;
    } catch {
      /* gone */
    }
  }
  return total;
}

async function serviceVersion(release: string): Promise<number> {
  const py = join(venvRoot(), `nova-${release}`, 'bin', 'python3');
  const { stdout } = await run(py, ['-c', 'from nova.objects.service import SERVICE_VERSION; print(SERVICE_VERSION)'], {
    env: { ...process.env, PYTHONWARNINGS: 'ignore' },
  });
  return Number(stdout.trim().split('\n').at(-1));
}

/** Which venv a running unit's Python imported its code from: its mapped C extensions say. */
function venvsMappedBy(pid: number): string[] {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
  return [...new Set([...maps.matchAll(/\/venvs\/([a-z]+-\d+\.\d+\.\d+)\//g)].map((m) => m[1]!))];
}

// Work in progress (issue 10): nova-compute 34.0.0 does not start yet after the upgrade of its
// node (docs/real-lab.md), so this runs only where the venvs were asked for
// (NOVA_UPGRADE_VENVS=33-34 bash scripts/install.sh), never in the default CI run.
const REAL = (process.env.NOVA_UPGRADE_VENVS ?? 'skip') !== 'skip';

beforeAll(async () => {
  if (!REAL) return;
  const t = sharedTemporal();
  address = t.address;
  await labDown(stateDir);
  const t0 = Date.now();
  lab = await labUp({ stateDir, subnet: '127.0.20', nova: 'real', apiMercySeconds: 10 });
  labUpMs = Date.now() - t0;
  const bundle = inject('workflowBundlePath');
  await startWorkerProcess({
    dir,
    address,
    namespace: t.namespace,
    taskQueue,
    ...(bundle ? { workflowBundlePath: bundle } : {}),
  });
}, 1_800_000);

afterAll(async () => {
  if (!REAL) return;
  await stopWorkerProcess(dir);
  await labDown(stateDir);
  // Nothing the lab started may outlive `lab down`: services, MariaDB, RabbitMQ, epmd.
  expect(backingPids(stateDir)).toEqual([]);
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe.runIf(REAL)('the real-nova lab', () => {
  it('upgrades nova 33 → 34 and placement 15 → 16 with the default templates and no failed request through the VIP', async () => {
    const controller = lab.nodes.find((n) => n.name === 'controller')!;
    const before = await serviceVersion(FROM);
    const after = await serviceVersion(TO);
    // The services-table check below could not tell the releases apart otherwise.
    expect(after).toBeGreaterThan(before);

    const probe = new VipProbe({
      url: lab.vipUrl,
      paths: ['/', '/v2.1/'],
      ratePerSecond: 20,
      clients: 4,
      requestTimeoutMs: 10_000,
      maxDurationMs: 60 * 60_000,
    });
    let peakRss = labRssBytes();
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, labRssBytes())), 2000);
    const t0 = Date.now();
    probe.start();
    const started = await cli('start', '-i', lab.inventoryPath, '--auto-approve', 'all');
    expect(started.code, started.stderr).toBe(0);
    const id = 'nova-upgrade-lab';
    let view: { running: boolean; progress?: Progress; result?: UpgradeResult };
    for (;;) {
      const s = await cli('status', id, '--json');
      expect(s.code, s.stderr).toBe(0);
      view = JSON.parse(s.stdout) as typeof view;
      if (!view.running) break;
      // A hold on real nova is the finding: show it instead of waiting out the test timeout.
      expect(view.progress?.status, JSON.stringify(view.progress?.pendingDecision, null, 2)).not.toBe('held');
      await new Promise((r) => setTimeout(r, 3000));
    }
    const upgradeMs = Date.now() - t0;
    const snap = await probe.stop();
    clearInterval(sampler);
    const result = view.result!;
    expect(
      result.status,
      JSON.stringify(
        result.steps.filter((s) => s.status !== 'succeeded'),
        null,
        2,
      ),
    ).toBe('completed');

    // Every nova service runs 34.0.0's code: its process maps the 34.0.0 venv, and placement's 16.0.0.
    for (const n of lab.nodes) {
      for (const unit of n.units.filter((u) => u !== NOVA_UNITS.keystone)) {
        const file = readUnitFile({ node: nodeLayout(n.root) }, unit)!;
        const want = unit === NOVA_UNITS.placement ? 'placement-16.0.0' : `nova-${TO}`;
        expect({ unit: `${n.name}/${unit}`, venvs: venvsMappedBy(file.pid) }).toEqual({
          unit: `${n.name}/${unit}`,
          venvs: [want],
        });
      }
    }
    // nova's own records: every service row of every cell reports 34.0.0's service version.
    for (const db of ['nova_cell0', 'nova_cell1']) {
      const rows = await mariadbQuery(
        backingDirs(stateDir).mariadb,
        `SELECT host, \`binary\`, version FROM ${db}.services WHERE deleted = 0`,
      );
      expect(rows.length, db).toBeGreaterThan(0);
      for (const [host, binary, version] of rows)
        expect({ db, host, binary, version: Number(version) }).toEqual({ db, host, binary, version: after });
    }
    const list = JSON.parse(
      await runNodeBin(controller, 'openstack', ['compute', 'service', 'list', '-f', 'json'], 120_000).catch(
        (e: Error) => e.message,
      ),
    ) as Array<{ Binary: string; Host: string; State: string; Status: string }>;
    expect(list.map((s) => `${s.Host}/${s.Binary} ${s.State} ${s.Status}`).sort()).toEqual(
      [
        'apicomp/nova-compute',
        'controller/nova-compute',
        'controller/nova-conductor',
        'controller/nova-conductor',
        'controller/nova-scheduler',
      ]
        .map((s) => `${s} up enabled`)
        .sort(),
    );
    // The conductors chose the compute RPC version from the services' versions themselves.
    const condLog = readFileSync(nodeLayout(controller.root).unitLog(NOVA_UNITS.superConductor), 'utf8');
    expect(condLog).toMatch(/Automatically selected compute RPC version/);

    // Online data migrations: the workflow's step ran them (cell0 and the API database, the
    // cells of nova.conf); then every cell has nothing left, cell by cell with its own config.
    expect(result.steps.find((s) => s.id === 'online-migrations')?.status).toBe('succeeded');
    for (const conf of [realFiles(controller.root).novaConf, realFiles(controller.root).cellConf('cell1')]) {
      const out = await runNodeBin(controller, 'nova-manage', ['--config-file', conf, 'db', 'online_data_migrations']);
      expect(out).toMatch(/Migration\s+\|\s+Total Needed/);
    }

    const hp = await (async () => {
      const pool = new SshPool();
      try {
        const r = await createHaproxyActivities({ runner: pool }).readBackendCounters({
          lbs: lab.lbs.map((b) => ({ node: b.node, socket: { via: 'unix' as const, path: b.socket } })),
          backend: 'nova-api',
        });
        const all = Object.values(r.counters).flatMap((s) => Object.values(s));
        return { retries: all.reduce((n, c) => n + c.wretr, 0), redispatches: all.reduce((n, c) => n + c.wredis, 0) };
      } finally {
        await pool.close();
      }
    })();
    expect(snap.failedRequests, JSON.stringify(snap.firstFailures)).toBe(0);
    expect(hp).toEqual({ retries: 0, redispatches: 0 });
    console.log(
      `real lab: up in ${labUpMs} ms; upgrade ${upgradeMs} ms; peak lab RSS ${Math.round(peakRss / 2 ** 20)} MiB; ` +
        `VIP probe ${snap.requests} requests, ${snap.failedRequests} failed, p99 ${snap.latencyMs.p99} ms; HAProxy retries ${hp.retries}, redispatches ${hp.redispatches}; ` +
        `service version ${before} → ${after}`,
    );
    expect(existsSync(lab.inventoryPath)).toBe(true);
  }, 3_600_000);
});
