// Upgrading nova-upgrade itself in the middle of an upgrade (docs/operator-guide.md, 8b): an
// upgrade starts on build A, the 0.1.0 release checked out from git, and waits at a gate; A's
// worker stops; a worker of build B (this tree) takes the same task queue; the operator
// approves; it completes on B. Both builds run their own workflow bundle on the real server.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { type validateInventory } from '../inventory/load';
import { approveUpdate, type UpgradeInput, type UpgradeResult } from '../common/messages';
import { novaUpgrade } from '../workflows/upgrade';
import { newScript, scriptedActivities, useProbeClient } from './helpers/scriptedActivities';
import { untilProgress } from './helpers/progress';
import { sharedTemporal, workflowBundle } from './temporalEnv';
import { defaultBuildId, makeCurrent, versionedWorker } from '../worker/main';

Runtime.install({ logger: new DefaultLogger('WARN') });

/** The 0.1.0 release (tag v0.1.0); by commit, since a clone need not carry tags. */
const RELEASE_0_1_0 = 'a6d2b7a';
const repo = resolve(__dirname, '..');
/** A shallow clone lacks the release's commit: then this test says so as skipped, not passed. */
const haveRelease = (() => {
  try {
    execFileSync('git', ['-C', repo, 'cat-file', '-e', `${RELEASE_0_1_0}^{commit}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const dir = mkdtempSync(join(tmpdir(), 'worker-upgrade-'));
const buildA = join(dir, 'nova-upgrade-0.1.0');
let client: Client;
let connection: NativeConnection;
let bundleA: string;

beforeAll(async () => {
  if (!haveRelease) return;
  execFileSync('git', ['-C', repo, 'worktree', 'add', '--detach', buildA, RELEASE_0_1_0], { stdio: 'ignore' });
  symlinkSync(join(repo, 'node_modules'), join(buildA, 'node_modules'));
  ({ code: bundleA } = await bundleWorkflowCode({
    workflowsPath: join(buildA, 'workflows', 'index.ts'),
    logger: new DefaultLogger('WARN'),
  }));
  const t = sharedTemporal();
  connection = await NativeConnection.connect({ address: t.address });
  client = new Client({ connection: await Connection.connect({ address: t.address }), namespace: t.namespace });
  useProbeClient(client);
}, 300_000);

afterAll(async () => {
  if (!haveRelease) return;
  await connection?.close();
  await client?.connection.close();
  execFileSync('git', ['-C', repo, 'worktree', 'remove', '--force', buildA], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
});

/** An upgrade's input as build A's CLI made it: build A's loader, its defaults, its templates. */
async function inputOfBuildA(cloudPrefix: string): Promise<UpgradeInput> {
  const raw = parse(readFileSync('examples/seed-two-node.yaml', 'utf8')) as Record<string, unknown>;
  const loadA = (await import(join(buildA, 'inventory', 'load.ts'))) as {
    validateInventory: typeof validateInventory;
  };
  const inventory = loadA.validateInventory({
    ...raw,
    cloud: `${cloudPrefix}${randomUUID().slice(0, 8)}`,
    retry: { maximumAttempts: 1, initialIntervalSeconds: 1 },
  });
  return { inventory, autoApprove: ['before-upgrade', 'before-window', 'after-window'], startedBy: 'test' };
}

it.runIf(haveRelease)(
  'an upgrade started on 0.1.0 and held at a gate completes on this build after the workers are swapped',
  async () => {
    const t = sharedTemporal();
    const taskQueue = `worker-upgrade-${randomUUID()}`;
    const script = newScript();
    const input = await inputOfBuildA('wu');
    const inventory = input.inventory;
    expect(inventory.commands.onlineDataMigrations).not.toContain('{config}');

    const workerA = await Worker.create({
      connection,
      namespace: t.namespace,
      taskQueue,
      workflowBundle: { code: bundleA },
      activities: scriptedActivities(script),
    });
    const runA = workerA.run();
    const h = await client.workflow.start(novaUpgrade, {
      taskQueue,
      workflowId: `nova-upgrade-${inventory.cloud}`,
      args: [input],
    });
    const atGate = await untilProgress(
      h,
      (p) => p.pendingApproval?.phase === 'during-window',
      'the window gate, on build A',
    );
    const doneOnA = atGate.steps.filter((s) => s.status === 'succeeded').map((s) => s.id);
    expect(doneOnA).toContain('db-sync:cell1');
    workerA.shutdown();
    await runA;
    const callsOnA = script.calls.length;

    const workerB = await Worker.create({
      connection,
      namespace: t.namespace,
      taskQueue,
      workflowBundle: workflowBundle(),
      activities: scriptedActivities(script),
    });
    const runB = workerB.run();
    try {
      await h.executeUpdate(approveUpdate, {
        args: [{ phase: 'during-window', approver: 'alice', comment: 'after the worker upgrade' }],
      });
      const result = (await h.result()) as UpgradeResult;
      expect(result.status).toBe('completed');
      // Nothing that ran on A ran again on B: B replayed A's history and went on from the gate.
      const onB = script.calls.slice(callsOnA);
      expect(
        onB.filter((c) =>
          ['checkLoadBalancers', 'pointComputeEndpointAtVip', 'syncApiDb', 'syncCellDb'].includes(c.name),
        ),
      ).toEqual([]);
      // The controller's install of before-window is not repeated (its compute batch checks it again, by design).
      expect(onB.filter((c) => String(c.input.key).includes('/install-code:controller/'))).toEqual([]);
      expect(
        script.calls.slice(0, callsOnA).filter((c) => String(c.input.key).includes('/install-code:controller/')),
      ).toHaveLength(1);
      expect(onB.map((c) => c.name)).toContain('upgradePlacement');
      expect(result.approvals.find((a) => a.phase === 'during-window')).toMatchObject({
        approver: 'alice',
        auto: false,
      });
    } finally {
      workerB.shutdown();
      await runB;
    }
  },
  300_000,
);

// The same swap as a team does it with Worker Versioning: build B joins a Worker Deployment while
// A (0.1.0, unversioned) still runs; B gets nothing until the operator makes it current; then the
// held upgrade moves to B at its next task (auto-upgrade), with A still polling, and completes there.
it.runIf(haveRelease)(
  'with Worker Versioning, a held upgrade moves to a new build only once the operator makes that build current',
  async () => {
    const t = sharedTemporal();
    const taskQueue = `worker-versioning-${randomUUID()}`;
    const scriptA = newScript();
    const scriptB = newScript();
    const input = await inputOfBuildA('wv');
    const inventory = input.inventory;
    const workerA = await Worker.create({
      connection,
      namespace: t.namespace,
      taskQueue,
      workflowBundle: { code: bundleA },
      activities: scriptedActivities(scriptA),
    });
    const runA = workerA.run();
    const bundleB = workflowBundle();
    const version = {
      deploymentName: `nova-upgrade-${randomUUID().slice(0, 8)}`,
      buildId: defaultBuildId(readFileSync(bundleB.codePath, 'utf8')),
    };
    const workerB = await Worker.create({
      connection,
      namespace: t.namespace,
      taskQueue,
      workflowBundle: bundleB,
      activities: scriptedActivities(scriptB),
      workerDeploymentOptions: versionedWorker(version),
    });
    const runB = workerB.run();
    try {
      const h = await client.workflow.start(novaUpgrade, {
        taskQueue,
        workflowId: `nova-upgrade-${inventory.cloud}`,
        args: [input],
      });
      await untilProgress(h, (p) => p.pendingApproval?.phase === 'during-window', 'the window gate, on build A');
      // B polled all along and was given nothing: a version that is not current gets no task.
      expect(scriptB.calls).toEqual([]);
      expect(scriptA.calls.length).toBeGreaterThan(0);
      expect(version.buildId).toMatch(/^\d+\.\d+\.\d+\S*-[0-9a-f]{12}$/);

      await makeCurrent(client, t.namespace, version.deploymentName, version.buildId);
      const callsOnA = scriptA.calls.length;
      await h.executeUpdate(approveUpdate, {
        args: [{ phase: 'during-window', approver: 'alice', comment: 'after making build B current' }],
      });
      const result = (await h.result()) as UpgradeResult;
      expect(result.status).toBe('completed');
      // A kept polling, yet everything after the promotion ran on B, and nothing of A's ran again.
      expect(scriptA.calls.length).toBe(callsOnA);
      expect(scriptB.calls.map((c) => c.name)).toContain('upgradePlacement');
      expect(scriptB.calls.filter((c) => ['syncApiDb', 'syncCellDb'].includes(c.name))).toEqual([]);
      const info = (await h.describe()).raw.workflowExecutionInfo?.versioningInfo;
      expect(info?.deploymentVersion?.buildId).toBe(version.buildId);
      expect(info?.deploymentVersion?.deploymentName).toBe(version.deploymentName);
      expect(String(info?.behavior)).toMatch(/AUTO_UPGRADE|^2$/);
    } finally {
      workerA.shutdown();
      workerB.shutdown();
      await Promise.all([runA, runB]);
    }
  },
  300_000,
);
