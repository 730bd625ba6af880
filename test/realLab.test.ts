// The upgrade against real OpenStack: nova 33.0.2 → 34.0.0, placement 15.0.0 → 16.0.0 and
// keystone 30.0.0 from their releases, on MariaDB and RabbitMQ, driven from the CLI through a
// real worker with the default command templates (only installCode is the lab's), while a
// probe sends requests through the VIP. Needs the venvs of scripts/openstack-venvs.sh (the
// lab builds them if missing) and the apt packages of scripts/install.sh.
import { execFile, execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHaproxyActivities } from '../activities/haproxy/activities';
import { httpRequest } from '../activities/http/get';
import { issueToken, readCloudCredentials } from '../activities/http/keystone';
import { VipProbe } from '../activities/http/probe';
import { SshPool } from '../activities/ssh/pool';
import { labDown, labUp, runOnNode, type LabInfo } from '../lab/lab';
import { realProbeAuth } from '../lab/labInventory';
import { NOVA_UNITS, nodeLayout } from '../lab/node/layout';
import { readUnitFile } from '../lab/node/units';
import { realFiles } from '../lab/real/configs';
import { REAL_TEMPEST_LIST, realTempestCommand, realTempestDir } from '../lab/real/tempest';
import { parseStestrTotals } from '../activities/tempest/stestr';
import { runNodeBin } from '../lab/real/realLab';
import type { Progress, UpgradeResult } from '../common/messages';
import { sharedTemporal, startSharedWorkerProcess } from './temporalEnv';
import { runCli, type CliRun } from './helpers/cli';
import { REAL_VENVS } from './helpers/realVenvs';
import { labPeakRss } from '../lab/rss';
import {
  computeServiceList,
  expectLiveServiceRowsAt,
  serviceVersion,
  tearDownRealLab,
  venvsMappedBy,
} from './helpers/realLab';

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

/** HAProxy's retries and redispatches (and connection errors) for nova-api, over every LB, since its start. */
async function haproxyCounters(): Promise<{ retries: number; redispatches: number; econ: number }> {
  const pool = new SshPool();
  try {
    const r = await createHaproxyActivities({ runner: pool }).readBackendCounters({
      lbs: lab.lbs.map((b) => ({ node: b.node, socket: { via: 'unix' as const, path: b.socket } })),
      backend: 'nova-api',
    });
    const all = Object.values(r.counters).flatMap((s) => Object.values(s));
    return {
      retries: all.reduce((n, c) => n + c.wretr, 0),
      redispatches: all.reduce((n, c) => n + c.wredis, 0),
      econ: all.reduce((n, c) => n + c.econ, 0),
    };
  } finally {
    await pool.close();
  }
}

/** apicomp (or another server) is drained on every LB: HAProxy's runtime drain bit or weight 0. */
function drainedOnEveryLb(server: string): boolean {
  for (const lb of lab.lbs) {
    const stdout = execFileSync('socat', ['-', `UNIX-CONNECT:${lb.socket}`], {
      input: 'show servers state nova-api\n',
      encoding: 'utf8',
    });
    const row = stdout
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[3] === server);
    if (!row) throw new Error(`no ${server} in nova-api on ${lb.node}: ${stdout}`);
    const admin = Number(row[6]);
    const uweight = Number(row[7]);
    if (!((admin & 0x08) !== 0 || uweight === 0)) return false;
  }
  return true;
}

function cli(...args: string[]): Promise<CliRun> {
  return runCli([...args, '--address', address, '--task-queue', taskQueue], { NOVA_UPGRADE_OPERATOR: 'test-operator' });
}

/** The lab's tempest list run once more on the controller, as the inventory's template runs it; its verdict. */
async function runTempestNow(controller: LabInfo['nodes'][number]): Promise<string> {
  const r = await run('sh', ['-c', realTempestCommand(controller.root)], {
    env: controller.env,
    timeout: 900_000,
    maxBuffer: 64 * 1024 * 1024,
  }).catch((e: { stdout?: string; stderr?: string }) => ({ stdout: `${e.stdout ?? ''}\n${e.stderr ?? ''}` }));
  const v = parseStestrTotals(r.stdout);
  return v.passed
    ? `tempest passed on controller: ${v.reason}`
    : `tempest failed: ${v.reason}\n${r.stdout.slice(-3000)}`;
}

// Runs when NOVA_UPGRADE_VENVS names the pair (test/helpers/realVenvs.ts): CI runs the upgrade
// test in a lane beside the rest of the suite (scripts/test.sh); the negative controls run when
// the file is run by itself.
const REAL = REAL_VENVS;
// The real fault in the one upgrade (issue 10 §4): it costs failed starts and a retry, so CI
// leaves it out; NOVA_UPGRADE_REAL_FAULT=1 turns it on.
const INJECT_API_FAULT = process.env.NOVA_UPGRADE_REAL_FAULT === '1';
// The harness probe's requests a second over the upgrade's whole window: 8 by default. CI, which
// runs this file beside the rest of the suite on 2 cores, asks for 6
// (NOVA_UPGRADE_REAL_PROBE_RATE): the authenticated requests (keystone, nova-api, MariaDB) were
// most of the real lab's 1.5 cores (docs/real-lab.md, "CI"), and 6 a second still gives the 2,000
// requests asserted below in the quiet machine's window (394 s on 30 Nov: 2,364 at 6 a second).
const PROBE_RATE = Number(process.env.NOVA_UPGRADE_REAL_PROBE_RATE ?? '8');
// The workflow's own probe (the lab's inventory: 4/s); CI asks for 2
// (NOVA_UPGRADE_REAL_WORKFLOW_PROBE_RATE), which leaves the rest of the suite more of the CPU:
// the CI of 30 Nov with both probes at 6/s and 4/s took 1,730-1,792 s of its 1,800.
const WORKFLOW_PROBE_RATE = process.env.NOVA_UPGRADE_REAL_WORKFLOW_PROBE_RATE;

/** The lab's inventory, with the workflow's probe at `rate` requests a second when one is asked for. */
function inventoryForRun(): string {
  if (!WORKFLOW_PROBE_RATE) return lab.inventoryPath;
  const inv = parse(readFileSync(lab.inventoryPath, 'utf8')) as { probe: { ratePerSecond: number } };
  inv.probe.ratePerSecond = Number(WORKFLOW_PROBE_RATE);
  const path = join(dir, 'inventory-probe.yaml');
  writeFileSync(path, stringify(inv));
  return path;
}

beforeAll(async () => {
  if (!REAL) return;
  const t = sharedTemporal();
  address = t.address;
  await labDown(stateDir);
  const t0 = Date.now();
  lab = await labUp({ stateDir, subnet: '127.0.30', nova: 'real', apiMercySeconds: 10 });
  labUpMs = Date.now() - t0;
  await startSharedWorkerProcess(dir, taskQueue);
}, 1_800_000);

afterAll(async () => {
  if (!REAL) return;
  await tearDownRealLab(dir, stateDir);
}, 120_000);

describe.runIf(REAL)('the real-nova lab', () => {
  it('upgrades nova 33 → 34 and placement 15 → 16 with the default templates and no failed request through the VIP', async () => {
    const controller = lab.nodes.find((n) => n.name === 'controller')!;
    const before = await serviceVersion(FROM);
    const after = await serviceVersion(TO);
    // The services-table check below could not tell the releases apart otherwise.
    expect(after).toBeGreaterThan(before);

    // The harness's own probe, beside the workflow's: the same request mix (anonymous version
    // documents, then with a token servers/detail, flavors and a keypair create and delete),
    // from before the start until the result, so it covers the whole window.
    const probe = new VipProbe({
      url: lab.vipUrl,
      paths: ['/', '/v2.1/'],
      auth: realProbeAuth(realFiles(controller.root).clouds),
      ratePerSecond: PROBE_RATE,
      clients: 4,
      requestTimeoutMs: 10_000,
      maxDurationMs: 60 * 60_000,
    });
    const sampler = labPeakRss(stateDir);
    const t0 = Date.now();
    probe.start();
    const started = await cli('start', '-i', inventoryForRun(), '--auto-approve', 'all');
    expect(started.code, started.stderr).toBe(0);
    const id = 'nova-upgrade-lab';
    let view: { running: boolean; progress?: Progress; result?: UpgradeResult };
    // A real fault: once apicomp's compute batch is done (its node runs 34.0.0's code, its
    // nova-api still the 33.0.2 process), its nova.conf gets an option value nova cannot parse.
    // nova-api on the new code then fails to start: the restart step must hold naming the
    // node, with apicomp still drained on every LB; fixed, a retry completes the upgrade.
    const apicomp = lab.nodes.find((n) => n.name === 'apicomp')!;
    const apicompConf = realFiles(apicomp.root).novaConf;
    // What the file holds just before the fault: the upgrade itself has edited it by then ([upgrade_levels]).
    let goodConf = '';
    const fault = { injected: false, held: '', drainedWhileHeld: false, fixed: false };
    for (;;) {
      const s = await cli('status', id, '--json');
      expect(s.code, s.stderr).toBe(0);
      view = JSON.parse(s.stdout) as typeof view;
      if (!view.running) break;
      const p = view.progress!;
      const step = (sid: string) => p.steps.find((x) => x.id === sid)?.status;
      if (INJECT_API_FAULT && !fault.injected && step('compute-batch:2') === 'succeeded') {
        expect(step(`restart:apicomp:${NOVA_UNITS.api}`)).toBe('pending');
        goodConf = readFileSync(apicompConf, 'utf8');
        appendFileSync(apicompConf, '\n[DEFAULT]\ndebug = not-a-boolean\n');
        fault.injected = true;
      }
      if (p.status === 'held') {
        // Any other hold on real nova is a finding: show it instead of waiting out the timeout.
        expect(fault.injected && !fault.fixed, JSON.stringify(p.pendingDecision, null, 2)).toBe(true);
        expect(p.pendingDecision?.stepId).toContain('apicomp');
        fault.held = p.pendingDecision!.error;
        expect(fault.held).toContain('apicomp');
        fault.drainedWhileHeld = drainedOnEveryLb('apicomp');
        expect(fault.drainedWhileHeld).toBe(true);
        writeFileSync(
          apicompConf,
          readFileSync(apicompConf, 'utf8').replace('\n[DEFAULT]\ndebug = not-a-boolean\n', ''),
        );
        expect(readFileSync(apicompConf, 'utf8')).toBe(goodConf);
        fault.fixed = true;
        const r = await cli('retry', id);
        expect(r.code, r.stderr).toBe(0);
      }
      await new Promise((r) => setTimeout(r, 3000));
    }
    if (INJECT_API_FAULT) expect(fault).toMatchObject({ injected: true, drainedWhileHeld: true, fixed: true });
    const upgradeMs = Date.now() - t0;
    const snap = await probe.stop();
    const memory = sampler.stop();
    const result = view.result!;
    // Where the upgrade's time goes (docs/real-lab.md): the slowest steps, in seconds.
    const took = result.steps
      .filter((x) => x.startedAt && x.endedAt)
      .map((x) => ({ id: x.id, s: (Date.parse(x.endedAt!) - Date.parse(x.startedAt!)) / 1000 }))
      .sort((a, b) => b.s - a.s);
    console.log(
      `real lab step times (s): ${took
        .slice(0, 25)
        .map((x) => `${x.id} ${x.s.toFixed(1)}`)
        .join(', ')}; all ${took.length} steps ${took.reduce((n, x) => n + x.s, 0).toFixed(0)} s`,
    );
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
    await expectLiveServiceRowsAt(stateDir, ['nova_cell0', 'nova_cell1'], after);
    expect(await computeServiceList(controller)).toEqual(
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
    // [upgrade_levels] compute = auto: a service picks its compute RPC version from the minimum
    // nova-compute service version at its first compute RPC call (nova/compute/rpcapi.py). On a
    // cloud without instances the conductors make none, so nothing is logged there; nova-api
    // makes one for a hypervisor's uptime (before 2.88). Asked through the VIP after the
    // upgrade, the answering nova-api logs the version it chose from 34.0.0's service version.
    const creds = readCloudCredentials(realFiles(controller.root).clouds, 'devstack-admin');
    const token = await issueToken(creds, 30_000);
    const hv = await httpRequest('GET', `${lab.vipUrl}/v2.1/os-hypervisors`, {
      timeoutMs: 60_000,
      headers: { 'X-Auth-Token': token.id, 'OpenStack-API-Version': 'compute 2.87' },
    });
    const first = (JSON.parse(hv.body) as { hypervisors: Array<{ id: number | string; hypervisor_hostname?: string }> })
      .hypervisors[0]!;
    const hvId = first.id;
    const up = await httpRequest('GET', `${lab.vipUrl}/v2.1/os-hypervisors/${hvId}/uptime`, {
      timeoutMs: 60_000,
      headers: { 'X-Auth-Token': token.id, 'OpenStack-API-Version': 'compute 2.87' },
    });
    // 501: the lab's fake driver has no get_host_uptime, and nova-compute's NotImplementedError
    // came back over the RPC call, which is the round trip this asks for.
    expect([200, 501], `uptime of hypervisor ${first.hypervisor_hostname ?? hvId}: ${up.body}`).toContain(up.status);
    const apiLogs = lab.nodes
      .filter((n) => n.units.includes(NOVA_UNITS.api))
      .map((n) => readFileSync(nodeLayout(n.root).unitLog(NOVA_UNITS.api), 'utf8'))
      .join('\n');
    const chosen = [
      ...apiLogs.matchAll(/Automatically selected compute RPC version (\S+) from minimum service version (\d+)/g),
    ];
    expect(chosen.map((m) => Number(m[2]))).toContain(after);

    // Online data migrations: the workflow's step ran them in every cell until exit 0 (the API
    // config, then the cell's); then each cell has nothing left: nova-manage exits 0 (runNodeBin
    // throws otherwise) with no row to migrate.
    const odm = result.steps.find((s) => s.id === 'online-migrations')!;
    expect(odm.status).toBe('succeeded');
    expect(odm.summary).toMatch(
      /(complete in every cell: cell0 \d+ rounds?, cell1 \d+ rounds?|nothing left to migrate in cell0, cell1)/,
    );
    const f = realFiles(controller.root);
    for (const conf of [f.novaConf, f.cellConf('cell1')]) {
      const out = await runNodeBin(controller, 'nova-manage', [
        '--config-file',
        f.novaConf,
        '--config-file',
        conf,
        'db',
        'online_data_migrations',
      ]);
      expect(out).toMatch(/Migration\s+\|\s+Total Needed/);
      expect(out, conf).not.toMatch(/rows matched query/);
    }

    // tempest 47.0.0's own run of the lab's list (lab/real/tempest.ts): before the upgrade,
    // after the computes, again and again beside the nova-api restarts, and after the upgrade.
    const listed = readFileSync(join(realTempestDir(controller.root), REAL_TEMPEST_LIST), 'utf8')
      .split('\n')
      .filter((l) => l.split('#')[0]!.trim()).length;
    expect(listed).toBeGreaterThanOrEqual(20);
    const stepOf = (sid: string) => result.steps.find((x) => x.id === sid)!;
    for (const sid of ['tempest-before', 'tempest-after-computes', 'tempest-during-api'])
      expect(stepOf(sid).summary, sid).toMatch(new RegExp(`tempest passed on controller: ${listed} passed, 0 skipped`));
    const during = /(\d+) runs from (\S+) to (\S+), each passed/.exec(stepOf('tempest-during-api').summary ?? '');
    expect(during, stepOf('tempest-during-api').summary).not.toBeNull();
    const apiServers = lab.nodes.filter((n) => n.units.includes(NOVA_UNITS.api)).map((n) => n.name);
    const restartsFrom = Date.parse(stepOf(`drain:${apiServers[0]}`).startedAt!);
    const restartsTo = Date.parse(stepOf(`enable:${apiServers.at(-1)}`).endedAt!);
    const tempestFrom = Date.parse(during![2]!);
    const tempestTo = Date.parse(during![3]!);
    // The runs began before the first drain and ended after the last API node was enabled again.
    expect(tempestFrom).toBeLessThanOrEqual(restartsFrom);
    expect(tempestTo).toBeGreaterThanOrEqual(restartsTo);
    const tempestAfter = await runTempestNow(controller);
    expect(tempestAfter).toContain(`${listed} passed, 0 skipped`);
    const tempestReport =
      `tempest: ${listed} tests; during the API restarts ${during![1]} runs over ${Math.round((tempestTo - tempestFrom) / 1000)} s, ` +
      `overlapping the restarts' ${Math.round((restartsTo - restartsFrom) / 1000)} s (first drain to last enable) in full; before: ${stepOf('tempest-before').summary}; after: ${tempestAfter}`;

    const hp = await haproxyCounters();
    expect(snap.failedRequests, JSON.stringify(snap.firstFailures)).toBe(0);
    // The probe kept its rate through the whole run, whatever its length (as in labUpgrade's
    // test): a probe that stalled, and so could not see a failure, falls short. A fixed 2,000
    // failed once the detached waits woke on the run's lock: the upgrade took 250 s, and its
    // 1,332 requests at 6 a second were 89% of the rate (CI of b810f16).
    expect(snap.requests).toBeGreaterThanOrEqual(Math.max(1000, 0.7 * PROBE_RATE * snap.durationSeconds));
    expect(snap.authenticatedRequests! / snap.requests).toBeGreaterThanOrEqual(0.3);
    // The workflow's own probe (same mix) saw no failure either.
    expect(result.probe?.failedRequests, JSON.stringify(result.probe)).toBe(0);
    // Every keypair the probes created was deleted again.
    const keypairs = JSON.parse(
      await runNodeBin(controller, 'openstack', ['--os-cloud', 'devstack', 'keypair', 'list', '-f', 'json'], 120_000),
    ) as unknown[];
    expect(keypairs).toEqual([]);
    expect({ retries: hp.retries, redispatches: hp.redispatches }).toEqual({ retries: 0, redispatches: 0 });
    console.log(
      `real lab: up in ${labUpMs} ms; upgrade ${upgradeMs} ms; peak lab memory ${Math.round(memory.peakPssBytes / 2 ** 20)} MiB PSS (${Math.round(memory.peakRssBytes / 2 ** 20)} MiB summed RSS, ${memory.peakProcesses} processes); ` +
        `VIP probe ${snap.requests} requests (${snap.authenticatedRequests} authenticated, ${snap.tokenRequests} tokens), ${snap.failedRequests} failed, p99 ${snap.latencyMs.p99} ms; HAProxy retries ${hp.retries}, redispatches ${hp.redispatches}; ` +
        `service version ${before} → ${after}; ${tempestReport}`,
    );
    expect(existsSync(lab.inventoryPath)).toBe(true);
  }, 3_600_000);

  // After the upgrade, on the same lab: the probe must be able to see what the upgrade avoided.
  it('negative controls on real nova-api: a restart without a drain and a SIGKILL in flight both show', async () => {
    const controller = lab.nodes.find((n) => n.name === 'controller')!;
    const apicomp = lab.nodes.find((n) => n.name === 'apicomp')!;
    const probe = new VipProbe({
      url: lab.vipUrl,
      paths: ['/', '/v2.1/'],
      auth: realProbeAuth(realFiles(controller.root).clouds),
      ratePerSecond: 8,
      clients: 4,
      requestTimeoutMs: 10_000,
      maxDurationMs: 15 * 60_000,
    });
    const before = await haproxyCounters();
    probe.start();
    // HAProxy still sends to apicomp while its uwsgi stops and reloads nova (tens of seconds).
    for (let i = 0; i < 2; i++) {
      await runOnNode(apicomp, 'systemctl', ['restart', NOVA_UNITS.api], 300_000);
      await new Promise((r) => setTimeout(r, 3000));
    }
    const undrained = await haproxyCounters();
    const afterRestarts = probe.snapshot();
    // SIGKILL to the whole unit (uwsgi's master and workers) while requests are in flight.
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 2000));
      const file = readUnitFile({ node: nodeLayout(apicomp.root) }, NOVA_UNITS.api)!;
      process.kill(-file.pid, 'SIGKILL');
      await runOnNode(apicomp, 'systemctl', ['start', NOVA_UNITS.api], 300_000);
    }
    const snap = await probe.stop();
    const seenByRestarts =
      undrained.retries +
      undrained.redispatches +
      undrained.econ -
      (before.retries + before.redispatches + before.econ);
    expect(seenByRestarts + afterRestarts.failedRequests).toBeGreaterThan(0);
    expect(snap.failedRequests - afterRestarts.failedRequests).toBeGreaterThan(0);
    console.log(
      `real negative controls: undrained restarts: HAProxy retries+redispatches+econ +${seenByRestarts}, ${afterRestarts.failedRequests} failed of ${afterRestarts.requests}; ` +
        `SIGKILL: ${snap.failedRequests - afterRestarts.failedRequests} failed of ${snap.requests - afterRestarts.requests} (${JSON.stringify(snap.failuresByKind)})`,
    );
  }, 1_200_000);
});
