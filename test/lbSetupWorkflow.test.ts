// setupLoadBalancers' orchestration on the shared Temporal server, with scripted activities:
// node order, the hold on a failed step and the operator's retry, and "nothing changed".
// The shared bundle holds only workflows/index.ts, so this worker bundles the workflow itself.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ApplicationFailure } from '@temporalio/common';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { validateInventory } from '../inventory/load';
import type { Inventory } from '../inventory/schema';
import type { LbNodeJob } from '../common/lbJobs';
import { decideUpdate } from '../common/messages';
import {
  lbSetupProgressQuery,
  setupLoadBalancers,
  type LbSetupProgress,
  type LbSetupResult,
} from '../workflows/setupLoadBalancers';
import { sharedTemporal } from './temporalEnv';

Runtime.install({ logger: new DefaultLogger('WARN') });

const taskQueue = `lb-wf-${randomUUID()}`;
let client: Client;
let nativeConnection: NativeConnection;
let worker: Worker;
let workerRun: Promise<void>;
const calls: string[] = [];
let alreadyDone = false;
let failVerifyOnce = false;

const done = (summary: string) => ({ summary, alreadyDone });
const activities = {
  diffLoadBalancerNode: async (j: LbNodeJob) => (
    calls.push(`diff:${j.node}`),
    {
      node: j.node,
      files: [],
      nonlocalBind: '1',
      haproxyRunning: true,
      changes: !alreadyDone,
      summary: `${j.node}: ${alreadyDone ? 'nothing to change' : 'changes'}`,
    }
  ),
  validateHaproxyConfig: async (j: LbNodeJob) => (calls.push(`validate:${j.node}`), { ...done('valid'), warnings: [] }),
  installLoadBalancerFiles: async (j: LbNodeJob) => (
    calls.push(`install:${j.node}`),
    { ...done('installed'), installed: [], backups: [] }
  ),
  reloadLoadBalancerServices: async (j: LbNodeJob) => (calls.push(`reload:${j.node}`), done('reloaded')),
  verifyLoadBalancerVip: async (i: { from: { node: string } }) => {
    calls.push(`verify:${i.from.node}`);
    if (failVerifyOnce) {
      failVerifyOnce = false;
      throw ApplicationFailure.create({
        type: 'LbVipNotHeld',
        message: 'VIP 192.168.0.95 is held by no LB node after 23 s',
        nonRetryable: true,
      });
    }
    return { holder: i.from.node, httpStatus: 200, summary: 'vip ok', alreadyDone: true };
  },
  checkLoadBalancers: async (i: { lbs: Array<{ node: string }> }) => (
    calls.push(`check:${i.lbs[0]!.node}`),
    { summary: 'ok', levels: {} }
  ),
  saveServerState: async () => done('saved'),
};

function inventory(): Inventory {
  const raw = parse(readFileSync('examples/seed-two-node.yaml', 'utf8')) as Record<string, unknown>;
  return validateInventory({
    ...raw,
    cloud: `lb${randomUUID().slice(0, 8)}`,
    retry: { maximumAttempts: 1, initialIntervalSeconds: 1 },
    loadBalancer: {},
  });
}

async function run(inv: Inventory, onHeld?: (p: LbSetupProgress, id: string) => Promise<void>): Promise<LbSetupResult> {
  const h = await client.workflow.start(setupLoadBalancers, {
    taskQueue,
    workflowId: `nova-lb-setup-${inv.cloud}`,
    args: [{ inventory: inv, startedBy: 'test' }],
  });
  if (onHeld) {
    for (let i = 0; i < 200; i++) {
      const p = await h.query(lbSetupProgressQuery);
      if (p.status === 'held') {
        await onHeld(p, h.workflowId);
        break;
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  }
  return (await h.result()) as LbSetupResult;
}

beforeAll(async () => {
  const t = sharedTemporal();
  nativeConnection = await NativeConnection.connect({ address: t.address });
  client = new Client({ connection: await Connection.connect({ address: t.address }), namespace: t.namespace });
  worker = await Worker.create({
    connection: nativeConnection,
    namespace: t.namespace,
    taskQueue,
    workflowsPath: resolve('workflows/setupLoadBalancers.ts'),
    activities,
  });
  workerRun = worker.run();
}, 120_000);

afterAll(async () => {
  worker?.shutdown();
  await workerRun;
  await nativeConnection?.close();
});

describe('setupLoadBalancers', () => {
  it('sets up the backup before the master, one node at a time, holding a failed step for the operator', async () => {
    calls.length = 0;
    alreadyDone = false;
    failVerifyOnce = true;
    const r = await run(inventory(), async (p) => {
      expect(p.pendingDecision).toMatchObject({ stepId: 'verify:apicomp', choices: ['retry', 'skip', 'abort'] });
      expect(p.pendingDecision!.error).toContain('VIP 192.168.0.95 is held by no LB node');
      const h = client.workflow.getHandle(p.workflowId);
      expect(await h.executeUpdate(decideUpdate, { args: [{ action: 'retry', by: 'alice' }] })).toBe(
        'retry accepted for verify:apicomp',
      );
    });
    const node = (n: string) => ['diff', 'validate', 'install', 'reload', 'verify', 'check'].map((k) => `${k}:${n}`);
    expect(calls).toEqual([...node('apicomp').slice(0, 5), 'verify:apicomp', 'check:apicomp', ...node('controller')]);
    expect(r).toMatchObject({ status: 'completed', changed: true, vipHolder: 'controller' });
  });

  it('says so when a run changes nothing', async () => {
    alreadyDone = true;
    const r = await run(inventory());
    expect(r.changed).toBe(false);
    expect(r.summary).toBe(
      'nothing changed: apicomp, controller already ran the rendered configuration; VIP 192.168.0.95 on controller',
    );
  });
});
