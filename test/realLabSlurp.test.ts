// The skip-level (SLURP, N+2) upgrade against real OpenStack: nova 31.3.1 (2025.1 Epoxy) →
// 33.0.2 (2026.1 Gazpacho), placement 13.0.1 → 15.0.0, keystone 30.0.0, on MariaDB and
// RabbitMQ (127.0.80), from the CLI through a real worker, while a probe sends requests through
// the VIP. Before it, on the same lab: a down compute record at 30.x's service version stops the
// start naming its host, and nova 33's own nova-status agrees; then a down record of a gone
// host at 31.x's version is deleted only on the operator's delete-records.
//
// Needs `bash scripts/openstack-venvs.sh --pair 31-33` (the lab builds them if missing) and the
// apt packages of scripts/install.sh; ≈ 25 min on a 2-core machine, so only with
// NOVA_UPGRADE_REAL_SLURP=1 (test/realLab.test.ts, the 33 → 34 run, has its own gate: NOVA_UPGRADE_VENVS).
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest } from '../activities/http/get';
import { issueToken, readCloudCredentials } from '../activities/http/keystone';
import { VipProbe } from '../activities/http/probe';
import type { Progress, UpgradeResult } from '../common/messages';
import { FFU_WORKAROUND, describeJump } from '../inventory/jump';
import { labDown, labUp, type LabInfo } from '../lab/lab';
import { realProbeAuth } from '../lab/labInventory';
import { NOVA_UNITS, nodeLayout } from '../lab/node/layout';
import { readUnitFile } from '../lab/node/units';
import { mariadbQuery } from '../lab/real/backing';
import { realFiles } from '../lab/real/configs';
import { backingDirs, venvRoot } from '../lab/real/realLab';
import { sharedTemporal, startSharedWorkerProcess } from './temporalEnv';
import { runCli, type CliRun } from './helpers/cli';
import { tearDownRealLab, venvsMappedBy } from './helpers/realLab';

const run = promisify(execFile);
const REAL = process.env.NOVA_UPGRADE_REAL_SLURP === '1';
const dir = mkdtempSync(join(tmpdir(), 'real-slurp-'));
chmodSync(dir, 0o755);
const stateDir = join(dir, 'lab');
const taskQueue = `real-slurp-${randomUUID()}`;
const FROM = '31.3.1';
const TO = '33.0.2';
let address: string;
let lab: LabInfo;
let labUpMs = 0;

function cli(...args: string[]): Promise<CliRun> {
  return runCli([...args, '--address', address, '--task-queue', taskQueue], { NOVA_UPGRADE_OPERATOR: 'test-operator' });
}

interface View {
  running: boolean;
  progress?: Progress;
  result?: UpgradeResult;
}

async function status(id: string): Promise<View> {
  const s = await cli('status', id, '--json');
  expect(s.code, s.stderr).toBe(0);
  return JSON.parse(s.stdout) as View;
}

const sql = (q: string) => mariadbQuery(backingDirs(stateDir).mariadb, q);

/** A compute record as nova writes it, for a host that has gone: last heartbeat three days ago. */
const insertGoneCompute = (host: string, version: number) =>
  sql(
    `INSERT INTO nova_cell1.services (created_at, updated_at, host, \`binary\`, topic, report_count, disabled, deleted, version, uuid, forced_down, last_seen_up) ` +
      `VALUES (UTC_TIMESTAMP() - INTERVAL 3 DAY, UTC_TIMESTAMP() - INTERVAL 3 DAY, '${host}', 'nova-compute', 'compute', 100, 0, 0, ${version}, UUID(), 0, UTC_TIMESTAMP() - INTERVAL 3 DAY)`,
  );

beforeAll(async () => {
  if (!REAL) return;
  const t = sharedTemporal();
  address = t.address;
  await labDown(stateDir);
  const t0 = Date.now();
  lab = await labUp({
    stateDir,
    subnet: '127.0.80',
    nova: 'real',
    apiMercySeconds: 10,
    fromVersion: FROM,
    toVersion: TO,
  });
  labUpMs = Date.now() - t0;
  await startSharedWorkerProcess(dir, taskQueue);
}, 1_800_000);

afterAll(async () => {
  if (!REAL) return;
  await tearDownRealLab(dir, stateDir);
}, 120_000);

describe.runIf(REAL)('the real-nova lab, skip-level 31.3.1 → 33.0.2', () => {
  it('a down compute record at 30.x stops the start naming its host, as nova 33 itself would; nothing changes', async () => {
    const controller = lab.nodes.find((n) => n.name === 'controller')!;
    await insertGoneCompute('old-cmp1', 67);
    // nova 33.0.2's own check, run from its venv against this cloud: the same refusal.
    const status33 = await run(
      join(venvRoot(), `nova-${TO}`, 'bin', 'nova-status'),
      ['--config-file', realFiles(controller.root).novaConf, 'upgrade', 'check'],
      { env: { ...process.env, PYTHONWARNINGS: 'ignore' }, timeout: 180_000 },
    ).then(
      (r) => ({ code: 0, out: r.stdout }),
      (e: { code?: number; stdout?: string }) => ({ code: e.code ?? -1, out: e.stdout ?? '' }),
    );
    expect(status33.out).toMatch(/Check: Older than N-1 computes\s*\|\s*\n\|\s*Result: Failure/);
    expect(status33.out.replace(/[\s|]+/g, ' ')).toContain(
      'the minimum compute service level in your system is 67 and the oldest supported service level is 68',
    );
    expect(status33.code).toBe(2);

    const id = 'slurp-too-old';
    const started = await cli('start', '-i', lab.inventoryPath, '--workflow-id', id, '--auto-approve', 'all');
    expect(started.code, started.stderr).toBe(0);
    let v: View;
    const deadline = Date.now() + 10 * 60_000;
    for (;;) {
      v = await status(id);
      if (v.progress?.status === 'held' || !v.running) break;
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 2000));
    }
    const p = v.progress!;
    expect(p.pendingDecision?.stepId, JSON.stringify(p.pendingDecision)).toBe('check-service-versions');
    expect(p.pendingDecision!.choices).toEqual(['retry', 'abort']);
    expect(p.pendingDecision!.error).toMatch(
      /nova-compute on old-cmp1 \(cell1, id \d+\) is down \(last seen [^)]+\) but still counts at service version 67 \(nova 29\.x, 2024\.1 Caracal, or 30\.x, 2024\.2 Dalmatian\), older than the 68 \(Epoxy\) nova 33\.0\.2 accepts, so its conductors and nova-api would refuse to start/,
    );
    for (const s of p.steps)
      if (!['check-node-access', 'check-cells', 'check-service-versions'].includes(s.id))
        expect({ id: s.id, status: s.status }).toEqual({ id: s.id, status: 'pending' });
    // Nothing changed: the controller still runs 31.3.1's code and the schema is 31's.
    expect(readFileSync(nodeLayout(controller.root).codeVersion, 'utf8').trim()).toBe(FROM);
    const a = await cli('abort', id, '--reason', 'old-cmp1 first');
    expect(a.code, a.stderr).toBe(0);
    for (;;) {
      v = await status(id);
      if (!v.running) break;
      await new Promise((r) => setTimeout(r, 2000));
    }
    expect(v.result?.status).toBe('aborted');
    // The operator deletes old-cmp1's record, as nova's soft delete does.
    await sql("UPDATE nova_cell1.services SET deleted = id, deleted_at = UTC_TIMESTAMP() WHERE host = 'old-cmp1'");
  }, 1_200_000);

  it('upgrades 31.3.1 → 33.0.2 skipping 32.x, with the pinning record deleted on the operator word and no failed request through the VIP', async () => {
    const controller = lab.nodes.find((n) => n.name === 'controller')!;
    const jump = describeJump(FROM, TO);
    expect(jump.kind).toBe('skip-level');
    // nova 33.0.2 accepts computes down to 68 (Epoxy), what 31.x writes: nova's start check
    // (nova/utils.py raise_if_old_compute, from nova/service.py and wsgi_app.py) passes
    // without the workaround, so the run leaves it unset.
    expect(jump.ffuWorkaround.needed).toBe(false);
    await insertGoneCompute('gone-cmp', 68);
    const [goneUuid] = (await sql("SELECT uuid FROM nova_cell1.services WHERE host = 'gone-cmp' AND deleted = 0")).map(
      (r) => r[0]!,
    );

    // Warm every nova-api worker before counting: in the run of 30 Nov 14:09 (load average 48)
    // the probe's first authenticated requests timed out (4 of them, within its first 6 s,
    // answered in 6-8 s by nova-api) five minutes before the upgrade changed anything (the
    // controller's code moved at 14:14). Cold uwsgi workers are not what this test measures.
    const token = await issueToken(readCloudCredentials(realFiles(controller.root).clouds, 'devstack'), 60_000);
    for (let i = 0; i < 16; i++)
      for (const path of ['/v2.1/servers/detail', '/v2.1/flavors'])
        await httpRequest('GET', `${lab.vipUrl}${path}`, { timeoutMs: 60_000, headers: { 'X-Auth-Token': token.id } });
    const probe = new VipProbe({
      url: lab.vipUrl,
      paths: ['/', '/v2.1/'],
      auth: realProbeAuth(realFiles(controller.root).clouds),
      ratePerSecond: 8,
      clients: 4,
      requestTimeoutMs: 10_000,
      maxDurationMs: 60 * 60_000,
    });
    const t0 = Date.now();
    probe.start();
    const id = 'nova-upgrade-lab';
    const started = await cli('start', '-i', lab.inventoryPath, '--auto-approve', 'all');
    expect(started.code, started.stderr).toBe(0);
    let v: View;
    let deleteAnswered = false;
    for (;;) {
      v = await status(id);
      if (!v.running) break;
      const p = v.progress!;
      if (p.status === 'held') {
        // The one hold expected: the pinning record, answered once with delete-records.
        expect(
          { deleteAnswered, stepId: p.pendingDecision?.stepId, choices: p.pendingDecision?.choices },
          JSON.stringify(p.pendingDecision, null, 2),
        ).toEqual({
          deleteAnswered: false,
          stepId: 'check-service-versions',
          choices: ['delete-records', 'skip', 'abort'],
        });
        expect(p.pendingDecision!.error).toContain(
          `its service version 68 would keep the compute RPC pinned at 6.4 instead of 6.5 after every other compute runs ${TO}; delete the record ("openstack compute service delete ${goneUuid}")`,
        );
        // Held, not deleted.
        expect(await sql("SELECT deleted FROM nova_cell1.services WHERE host = 'gone-cmp'")).toEqual([['0']]);
        const d = await cli('delete-records', id);
        expect(d.code, d.stderr).toBe(0);
        deleteAnswered = true;
      }
      await new Promise((r) => setTimeout(r, 3000));
    }
    const upgradeMs = Date.now() - t0;
    const snap = await probe.stop();
    const result = v.result!;
    expect(
      result.status,
      JSON.stringify(
        result.steps.filter((s) => s.status !== 'succeeded'),
        null,
        2,
      ),
    ).toBe('completed');
    expect(deleteAnswered).toBe(true);
    // nova's API deleted it (soft delete: deleted = id).
    expect(
      (await sql("SELECT deleted <> 0 FROM nova_cell1.services WHERE host = 'gone-cmp'")).map((r) => r[0]),
    ).toEqual(['1']);

    // Every nova service runs 33.0.2's code, placement 15.0.0's.
    for (const n of lab.nodes) {
      for (const unit of n.units.filter((u) => u !== NOVA_UNITS.keystone)) {
        const file = readUnitFile({ node: nodeLayout(n.root) }, unit)!;
        const want = unit === NOVA_UNITS.placement ? 'placement-15.0.0' : `nova-${TO}`;
        expect({ unit: `${n.name}/${unit}`, venvs: venvsMappedBy(file.pid) }).toEqual({
          unit: `${n.name}/${unit}`,
          venvs: [want],
        });
      }
    }
    // Every live service row of every cell reports 33's service version, 72.
    for (const db of ['nova_cell0', 'nova_cell1']) {
      const rows = await sql(`SELECT host, \`binary\`, version FROM ${db}.services WHERE deleted = 0`);
      expect(rows.length, db).toBeGreaterThan(0);
      for (const [host, binary, version] of rows)
        expect({ db, host, binary, version: Number(version) }).toEqual({ db, host, binary, version: 72 });
    }
    // The workaround was never needed, so never written: no config of any node has it.
    for (const n of lab.nodes) {
      const f = realFiles(n.root);
      for (const conf of [f.novaConf, f.cpuConf, f.cellConf('cell1')]) {
        let text = '';
        try {
          text = readFileSync(conf, 'utf8');
        } catch {
          continue;
        }
        expect(text, conf).not.toContain(FFU_WORKAROUND.split(']')[1]!);
      }
    }
    expect(result.probe?.failedRequests, JSON.stringify(result.probe)).toBe(0);
    expect(snap.failedRequests, JSON.stringify(snap.firstFailures)).toBe(0);
    expect(snap.requests).toBeGreaterThanOrEqual(1000);
    const sv = result.steps.find((s) => s.id === 'check-service-versions')!;
    console.log(
      `real skip-level ${FROM} → ${TO}: lab up ${labUpMs} ms; upgrade ${upgradeMs} ms; VIP probe ${snap.requests} requests (${snap.authenticatedRequests} authenticated), ${snap.failedRequests} failed, p99 ${snap.latencyMs.p99} ms; workflow probe ${result.probe?.requests} requests, ${result.probe?.failedRequests} failed; preflight: ${sv.summary}`,
    );
  }, 3_600_000);
});
