// The service-version preflight on the stand-in lab (127.0.80), through the CLI and a real
// worker: the read runs the default serviceVersions template over SSH (the lab's python3 answers
// the read from the stand-in cloud's records; the real-nova lab runs the same template with
// nova's own Python, test/realLabSlurp.test.ts). A down compute record older than the target's
// envelope stops the start naming its host, before anything changes; a down record that would
// keep the RPC pinned is deleted only after the operator answers delete-records.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { parse, stringify } from 'yaml';
import type { Progress, UpgradeResult } from '../common/messages';
import { addOrphanService, labDown, labEvents, labUp, type LabInfo } from '../lab/lab';
import { readServices, updateServices } from '../lab/node/cloud';
import { LAB_SERVICE_VERSION } from '../lab/node/python';
import { NOVA_RELEASES } from '../inventory/releases';
import { stopWorkerProcess } from '../worker/process';
import { sharedTemporal, startSharedWorkerProcess } from './temporalEnv';
import { runCli, type CliRun } from './helpers/cli';
import { untilProgress } from './helpers/progress';

const dir = mkdtempSync(join(tmpdir(), 'service-versions-lab-'));
const stateDir = join(dir, 'lab');
const taskQueue = `service-versions-lab-${randomUUID()}`;
let address: string;
let lab: LabInfo;
let connection: Connection;
let client: Client;

function cli(...args: string[]): Promise<CliRun> {
  return runCli([...args, '--address', address, '--task-queue', taskQueue], { NOVA_UPGRADE_OPERATOR: 'test-operator' });
}

/** The progress (every 150 ms, through the query) until `ok` holds. */
function until(id: string, what: string, ok: (p: Progress) => boolean, timeoutMs = 120_000): Promise<Progress> {
  return untilProgress(client.workflow.getHandle(id), ok, `${id}: ${what}`, timeoutMs);
}

/** The upgrade's result, once it has finished. */
async function resultOf(id: string): Promise<UpgradeResult> {
  return (await client.workflow.getHandle(id).result()) as UpgradeResult;
}

const CHECKS = ['check-node-access', 'check-cells', 'check-service-versions'];

beforeAll(async () => {
  const t = sharedTemporal();
  address = t.address;
  connection = await Connection.connect({ address });
  client = new Client({ connection, namespace: t.namespace });
  await labDown(stateDir);
  lab = await labUp({ stateDir, subnet: '127.0.80' });
  await startSharedWorkerProcess(dir, taskQueue);
}, 300_000);

afterAll(async () => {
  await connection?.close();
  await stopWorkerProcess(dir);
  await labDown(stateDir);
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe('the service-version preflight on the stand-in lab', () => {
  it("the lab's service versions are the release model's", () => {
    for (const r of NOVA_RELEASES) expect(LAB_SERVICE_VERSION[r.major], r.name).toBe(r.serviceVersion);
  });

  it('a down compute record older than the envelope stops the start, naming host and version; nothing changes', async () => {
    // 30.0.0 → 31.0.0: nova 31 starts beside computes down to 66 (Caracal); a Zed compute (64)
    // that died years ago still counts, as nova's own start check counts it.
    addOrphanService(stateDir, 'old-cmp1', 'nova-compute', new Date(Date.now() - 3 * 86_400_000), 64);
    const eventsBefore = labEvents(stateDir, 'controller').length;
    const id = 'sv-too-old';
    const started = await cli('start', '-i', lab.inventoryPath, '--workflow-id', id, '--auto-approve', 'all');
    expect(started.code, started.stderr).toBe(0);
    const p = await until(id, 'hold', (x) => x.status === 'held');
    expect(p.pendingDecision).toMatchObject({ stepId: 'check-service-versions', choices: ['retry', 'abort'] });
    expect(p.pendingDecision!.error).toContain('nova-compute on old-cmp1 (cell1, id 5) is down (last seen ');
    expect(p.pendingDecision!.error).toContain(
      'but still counts at service version 64 (Zed), older than the 66 (Caracal) nova 31.0.0 accepts, so its conductors and nova-api would refuse to start',
    );
    expect(p.pendingDecision!.error).toContain('Nothing was changed.');
    // Only the read-only checks ran; no later step started, and nothing ran on the controller.
    for (const s of p.steps) {
      if (CHECKS.includes(s.id)) continue;
      expect({ id: s.id, status: s.status }).toEqual({ id: s.id, status: 'pending' });
    }
    expect(labEvents(stateDir, 'controller').slice(eventsBefore)).toEqual([]);
    const a = await cli('abort', id, '--reason', 'old-cmp1 is to be upgraded first');
    expect(a.code, a.stderr).toBe(0);
    expect((await resultOf(id)).status).toBe('aborted');
  }, 300_000);

  it('a down record that would pin the compute RPC is deleted only after the operator answers delete-records', async () => {
    // The operator removed old-cmp1; another gone host's record is at 30.x's 67: inside 31's
    // envelope, but below its 68, so it would hold the compute RPC at 6.3 after the run.
    updateServices(stateDir, (rs) => rs.filter((r) => r.host !== 'old-cmp1'));
    const gone = addOrphanService(stateDir, 'gone-cmp', 'nova-compute', new Date(Date.now() - 86_400_000), 67);
    const id = 'sv-pinning';
    const started = await cli(
      'start',
      '-i',
      lab.inventoryPath,
      '--workflow-id',
      id,
      '--auto-approve',
      'before-upgrade',
    );
    expect(started.code, started.stderr).toBe(0);
    const held = await until(id, 'hold', (x) => x.status === 'held');
    expect(held.pendingDecision).toMatchObject({
      stepId: 'check-service-versions',
      choices: ['delete-records', 'skip', 'abort'],
    });
    expect(held.pendingDecision!.error).toContain(`nova-compute on gone-cmp (cell1, id 5) is down (last seen `);
    expect(held.pendingDecision!.error).toContain(
      `and not in the inventory, so this run will not upgrade it, and its service version 67 would keep the compute RPC pinned at 6.3 instead of 6.4 after every other compute runs 31.0.0; delete the record ("openstack compute service delete ${gone.id}") if gone-cmp is gone`,
    );
    // Held, not deleted: the record is still there.
    expect(readServices(stateDir).some((r) => r.id === gone.id)).toBe(true);
    const d = await cli('delete-records', id);
    expect(d.code, d.stderr).toBe(0);
    const after = await until(
      id,
      'the preflight to pass',
      (x) => x.steps.find((s) => s.id === 'check-service-versions')?.status === 'succeeded',
    );
    expect(readServices(stateDir).some((r) => r.id === gone.id)).toBe(false);
    expect(after.warnings).toContain(`on test-operator's word, deleted nova-compute on gone-cmp (cell1, ${gone.id})`);
    expect(after.steps.find((s) => s.id === 'check-service-versions')!.summary).toContain(
      'every counted compute is at 66 or newer',
    );
    const a = await cli('abort', id, '--reason', 'the test stops at the before-window gate');
    expect(a.code, a.stderr).toBe(0);
    expect((await resultOf(id)).status).toBe('aborted');
  }, 300_000);
  it('a service list with integer ids (compute API 2.52) makes delete-records refuse; nothing is deleted', async () => {
    // Before 2.53 nova lists the per-cell integer id, and DELETE /os-services/{id} deletes the
    // first record with that id in any cell: another host's, on a cloud of several cells.
    const gone = addOrphanService(stateDir, 'gone-cmp2', 'nova-compute', new Date(Date.now() - 86_400_000), 67);
    const raw = parse(readFileSync(lab.inventoryPath, 'utf8')) as { commands?: Record<string, string> };
    const oldApi = join(dir, 'inventory-compute-2.52.yaml');
    writeFileSync(
      oldApi,
      stringify({
        ...raw,
        commands: {
          ...raw.commands,
          serviceList: 'OS_CLOUD={osCloud} openstack --os-compute-api-version 2.52 compute service list --long -f json',
        },
      }),
    );
    const id = 'sv-integer-ids';
    const started = await cli('start', '-i', oldApi, '--workflow-id', id, '--auto-approve', 'before-upgrade');
    expect(started.code, started.stderr).toBe(0);
    await until(id, 'hold', (x) => x.pendingDecision?.choices.includes('delete-records') === true);
    const d = await cli('delete-records', id);
    expect(d.code, d.stderr).toBe(0);
    const refused = await until(
      id,
      'the refusal',
      (x) => x.status === 'held' && (x.pendingDecision?.error ?? '').includes('integer ids'),
    );
    expect(refused.pendingDecision!.error).toContain(
      'that is compute API 2.52 or older, whose ids are per cell, so a record cannot be deleted safely by them; nothing was deleted',
    );
    expect(readServices(stateDir).some((r) => r.id === gone.id)).toBe(true);
    const a = await cli('abort', id, '--reason', 'the test stops here');
    expect(a.code, a.stderr).toBe(0);
    expect((await resultOf(id)).status).toBe('aborted');
    updateServices(stateDir, (rs) => rs.filter((r) => r.id !== gone.id));
  }, 300_000);
});
