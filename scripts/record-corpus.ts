// Records the replay corpus of a release: one finished history (with its children) for every
// path the workflows can take, into test/histories/<release>/<scenario>/. The replay test
// replays every kept release's corpus against today's code, so a change that would break an
// upgrade already running on that release fails CI. Run it once per release, on the release's
// own commit, and never delete what it wrote (docs/contributing.md).
//
//   npx tsx scripts/record-corpus.ts <release> [--out DIR] [scenario ...]
//
// --out names the histories folder to write into (default: this checkout's test/histories), so
// a release's corpus can be recorded from a worktree of its tag into today's tree.
//
// The activities are scripted (test/helpers/scriptedActivities.ts): replay needs only the
// workflow's commands and the results recorded in history, and scripted failures reach every
// hold, skip and abort path deterministically. The real lab's histories sit beside them.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createNotifyActivities } from '../activities/notify/webhook';
import { findFreePort, startDevServer, stopDevServer } from '../client/devServer';
import { repoRoot } from '../client/paths';
import { validateInventory } from '../inventory/load';
import type { Inventory } from '../inventory/schema';
import {
  abortSignal,
  approveSignal,
  approveUpdate,
  decideUpdate,
  progressQuery,
  type Phase,
  type Progress,
  type UpgradeInput,
} from '../common/messages';
import { lbSetupProgressQuery, lbSetupWorkflowId, setupLoadBalancers } from '../workflows/setupLoadBalancers';
import { novaUpgrade } from '../workflows/upgrade';
import type { LbNodeJob } from '../common/lbJobs';
import {
  liveScript,
  newScript,
  scriptedActivities,
  useProbeClient,
  type Script,
} from '../test/helpers/scriptedActivities';

const ALL: Phase[] = ['before-upgrade', 'before-window', 'during-window', 'after-window'];

interface Scenario {
  name: string;
  /** The workflow it starts; novaUpgrade unless said. */
  workflow?: 'novaUpgrade' | 'setupLoadBalancers';
  /** What the history proves replays. */
  path: string;
  inventory?: Record<string, unknown>;
  autoApprove: Phase[];
  script?: (s: Script) => void;
  drive?: (h: WorkflowHandle, until: Until) => Promise<void>;
}

type Until = (pred: (p: Progress) => boolean, what: string) => Promise<Progress>;

const decide = (h: WorkflowHandle, action: 'retry' | 'skip' | 'abort' | 'shutdown-sessions', reason?: string) =>
  h.executeUpdate(decideUpdate, { args: [{ action, by: 'recorder', ...(reason ? { reason } : {}) }] });

export const SCENARIOS: Scenario[] = [
  {
    name: 'happy-rolling',
    path: 'every phase auto-approved, API servers one after another',
    autoApprove: ALL,
    inventory: { haproxy: { backend: 'nova-api', drainMode: 'weight', switchover: 'rolling' } },
  },
  {
    name: 'happy-monotonic',
    path: 'every phase auto-approved, the monotonic switch-over',
    autoApprove: ALL,
    inventory: { haproxy: { backend: 'nova-api', drainMode: 'weight', switchover: 'monotonic' } },
  },
  {
    name: 'gates-manual',
    path: 'every gate approved by an operator: three by update, one by signal',
    autoApprove: [],
    drive: async (h, until) => {
      for (const phase of ALL) {
        await until((p) => p.pendingApproval?.phase === phase, `the ${phase} gate`);
        if (phase === 'after-window') await h.signal(approveSignal, { phase, approver: 'recorder' });
        else await h.executeUpdate(approveUpdate, { args: [{ phase, approver: 'recorder', comment: `CHG-${phase}` }] });
      }
    },
  },
  {
    name: 'hold-retry',
    path: 'a step that fails holds; the operator retries and it completes',
    autoApprove: ALL,
    script: (s) => s.failures.set('syncApiDb', 1),
    drive: async (h, until) => {
      await until((p) => p.pendingDecision?.stepId === 'api-db-sync', 'the hold at api-db-sync');
      await decide(h, 'retry');
    },
  },
  {
    name: 'skip',
    path: 'a step that fails holds; the operator skips it with a reason',
    autoApprove: ALL,
    script: (s) => s.failures.set('pointComputeEndpointAtVip', 1),
    drive: async (h, until) => {
      await until(
        (p) => p.pendingDecision?.stepId === 'change-compute-endpoint',
        'the hold at change-compute-endpoint',
      );
      await decide(h, 'skip', 'endpoint managed by the operator');
    },
  },
  {
    name: 'shutdown-sessions',
    path: 'a drain that does not empty holds; the operator shuts the sessions down',
    autoApprove: ALL,
    script: (s) => s.failures.set('waitForNoSessions', 1),
    drive: async (h, until) => {
      await until(
        (p) => p.pendingDecision?.stepId?.startsWith('wait-sessions:') === true,
        'the hold at a session wait',
      );
      await decide(h, 'shutdown-sessions');
    },
  },
  {
    name: 'batch-retry',
    path: 'a compute batch child fails; the parent holds and a retry runs a new child',
    autoApprove: ALL,
    script: (s) => {
      s.failures.set('startService', 1);
    },
    drive: async (h, until) => {
      await until(
        (p) => p.pendingDecision?.stepId?.startsWith('compute-batch:') === true,
        'the hold at a compute batch',
      );
      await decide(h, 'retry');
    },
  },
  {
    name: 'batch-disable-retry',
    path: "a compute batch's disable fails beside its installs; the batch is held whole, no node stopped, and a retry runs a new child",
    autoApprove: ALL,
    script: (s) => {
      s.failures.set('disableComputeServices', 1);
    },
    drive: async (h, until) => {
      await until(
        (p) => p.pendingDecision?.stepId?.startsWith('compute-batch:') === true,
        'the hold at a compute batch',
      );
      await decide(h, 'retry');
    },
  },
  {
    name: 'batch-nodes-fail-before-gate',
    path: "every node of a compute batch fails its install before the batch's disable and task wait end; the child waits for them, and an abort at the node's hold",
    autoApprove: ALL,
    script: (s) => {
      s.failures.set('installCode', Infinity);
      s.failWhen = (c) => c.name === 'installCode' && String(c.input.key).includes('/compute-batch:');
      s.overrides = {
        waitForNoTasksInProgress: async () => {
          await new Promise((r) => setTimeout(r, 1000));
          return { summary: 'no server tasks in progress', polls: 3, commands: [] };
        },
      };
    },
    drive: async (h, until) => {
      await until(
        (p) => p.pendingDecision?.stepId?.startsWith('compute-batch:') === true,
        'the hold at a compute batch',
      );
      await decide(h, 'abort', 'recorded abort at a failed node');
    },
  },
  {
    name: 'abort-in-window',
    path: 'an API restart fails after its drain; abort restarts the service and enables the server',
    autoApprove: ALL,
    script: (s) => {
      // New runs restart in one activity (restartServiceChecked, behind 'restart-one-exchange').
      s.failures.set('restartServiceChecked', 1);
      // nova-api's unit only: devstack@n-api-meta (the metadata API, restarted in place) is not it.
      s.failWhen = (c) => c.name !== 'restartServiceChecked' || String(c.input.unit).endsWith('@n-api');
    },
    drive: async (h, until) => {
      await until(
        (p) => /^restart:[^:]+:devstack@n-api$/.test(p.pendingDecision?.stepId ?? ''),
        'the hold at an API restart',
      );
      await decide(h, 'abort', 'recorded abort in the window');
    },
  },
  {
    name: 'abort-at-gate',
    path: 'an abort signal at a gate',
    autoApprove: ['before-upgrade'],
    drive: async (h, until) => {
      await until((p) => p.pendingApproval?.phase === 'before-window', 'the before-window gate');
      await h.signal(abortSignal, { by: 'recorder', reason: 'change window cancelled' });
    },
  },
  {
    name: 'window-hold',
    path: 'the maintenance window ends before a compute batch: hold, retry (holds again), abort',
    autoApprove: ALL,
    inventory: { window: { end: '2020-01-01T00:00:00Z' } },
    drive: async (h, until) => {
      await until((p) => p.pendingDecision?.stepId === 'compute-batch:1', 'the window hold');
      await decide(h, 'retry');
      await new Promise((r) => setTimeout(r, 500));
      await until((p) => p.pendingDecision?.stepId === 'compute-batch:1', 'the window hold after retry');
      await decide(h, 'abort', 'window over');
    },
  },
  {
    name: 'webhook-gate',
    path: 'a webhook told of a gate, a hold and the finish',
    autoApprove: ['before-window', 'during-window', 'after-window'],
    inventory: { notify: { webhookUrlEnv: 'NOVA_UPGRADE_CORPUS_WEBHOOK' } },
    script: (s) => s.failures.set('syncApiDb', 1),
    drive: async (h, until) => {
      await until((p) => p.pendingApproval?.phase === 'before-upgrade', 'the first gate');
      await h.executeUpdate(approveUpdate, { args: [{ phase: 'before-upgrade', approver: 'recorder' }] });
      await until((p) => p.pendingDecision?.stepId === 'api-db-sync', 'the hold at api-db-sync');
      await decide(h, 'retry');
    },
  },
  {
    name: 'lb-setup-hold-retry',
    path: 'lb setup: the VIP check fails on the first node, holds, and a retry completes',
    workflow: 'setupLoadBalancers',
    autoApprove: [],
    inventory: { loadBalancer: {} },
    drive: async (h) => {
      for (let i = 0; i < 400; i++) {
        const p = await h.query(lbSetupProgressQuery);
        if (p.status === 'held') return void (await decide(h, 'retry'));
        await new Promise((r) => setTimeout(r, 150));
      }
      throw new Error('lb-setup-hold-retry: the hold never came');
    },
  },
];

/** The LB setup's activities, answering like the real ones; the VIP check fails once. */
function lbSetupActivities() {
  let failVerify = true;
  const done = (summary: string) => ({ summary, alreadyDone: false });
  return {
    diffLoadBalancerNode: async (j: LbNodeJob) => ({
      node: j.node,
      files: [],
      nonlocalBind: '1',
      haproxyRunning: true,
      changes: true,
      summary: `${j.node}: changes`,
    }),
    validateHaproxyConfig: async () => ({ ...done('valid'), warnings: [] }),
    installLoadBalancerFiles: async () => ({ ...done('installed'), installed: [], backups: [] }),
    reloadLoadBalancerServices: async () => done('reloaded'),
    verifyLoadBalancerVip: async (i: { from: { node: string } }) => {
      if (failVerify) {
        failVerify = false;
        throw ApplicationFailure.create({
          type: 'LbVipNotHeld',
          message: 'VIP 192.168.0.95 is held by no LB node after 23 s',
          nonRetryable: true,
        });
      }
      return { holder: i.from.node, httpStatus: 200, summary: 'vip ok', alreadyDone: true };
    },
    saveServerState: async () => done('saved'),
  };
}

/** Parent first, then every child it started, in the order it started them. */
async function histories(
  client: Client,
  h: WorkflowHandle,
): Promise<{ workflowId: string; runId: string; history: temporal.api.history.v1.IHistory }[]> {
  const parent = await client.workflow.getHandle(h.workflowId).fetchHistory();
  const out = [
    {
      workflowId: h.workflowId,
      runId: parent.events![0]!.workflowExecutionStartedEventAttributes!.originalExecutionRunId!,
      history: parent,
    },
  ];
  for (const e of parent.events ?? []) {
    const started = e.childWorkflowExecutionStartedEventAttributes;
    if (!started) continue;
    const { workflowId, runId } = started.workflowExecution!;
    out.push({
      workflowId: workflowId!,
      runId: runId!,
      history: await client.workflow.getHandle(workflowId!, runId!).fetchHistory(),
    });
  }
  return out;
}

async function main(argv: string[]): Promise<void> {
  const o = argv.indexOf('--out');
  const outRoot = o >= 0 ? argv.splice(o, 2)[1]! : join(repoRoot(), 'test', 'histories');
  const [release, ...only] = argv;
  if (!release || !/^\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$/.test(release))
    throw new Error('usage: record-corpus.ts <release x.y.z or x.y.z-pre> [scenario ...]');
  const chosen = only.length ? SCENARIOS.filter((s) => only.includes(s.name)) : SCENARIOS;
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const dir = mkdtempSync(join(tmpdir(), 'nova-upgrade-corpus-'));
  const stateDir = join(dir, 'temporal');
  const server = await startDevServer({ stateDir, port: await findFreePort(), uiPort: await findFreePort() });
  const receiver = createServer((req, res) => req.resume().on('end', () => res.writeHead(204).end()));
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  process.env.NOVA_UPGRADE_CORPUS_WEBHOOK = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  const { code } = await bundleWorkflowCode({
    workflowsPath: join(repoRoot(), 'workflows', 'index.ts'),
    logger: new DefaultLogger('WARN'),
  });
  const connection = await NativeConnection.connect({ address: server.address });
  const client = new Client({
    connection: await Connection.connect({ address: server.address }),
    namespace: server.namespace,
  });
  useProbeClient(client);
  let script = newScript();
  const live = liveScript(() => script);
  const taskQueue = 'corpus';
  const worker = await Worker.create({
    connection,
    namespace: server.namespace,
    taskQueue,
    workflowBundle: { code },
    maxHeartbeatThrottleInterval: '500ms',
    activities: { ...scriptedActivities(live), ...createNotifyActivities(), ...lbSetupActivities() },
  });
  const running = worker.run();
  try {
    for (const sc of chosen) {
      script = newScript();
      sc.script?.(script);
      const raw = parse(readFileSync(join(repoRoot(), 'examples', 'seed-two-node.yaml'), 'utf8')) as Record<
        string,
        unknown
      >;
      const overrides = sc.inventory ?? {};
      const inv: Inventory = validateInventory({
        ...raw,
        cloud: `corpus-${sc.name}`,
        retry: { maximumAttempts: 1, initialIntervalSeconds: 1 },
        ...overrides,
      });
      const input: UpgradeInput = { inventory: inv, autoApprove: sc.autoApprove, startedBy: 'recorder' };
      const h =
        sc.workflow === 'setupLoadBalancers'
          ? await client.workflow.start(setupLoadBalancers, {
              taskQueue,
              workflowId: lbSetupWorkflowId(inv.cloud),
              args: [{ inventory: inv, startedBy: 'recorder' }],
            })
          : await client.workflow.start(novaUpgrade, {
              taskQueue,
              workflowId: `nova-upgrade-${inv.cloud}`,
              args: [input],
            });
      const until: Until = async (pred, what) => {
        const deadline = Date.now() + 60_000;
        for (;;) {
          const p = await h.query(progressQuery);
          if (pred(p)) return p;
          if (Date.now() > deadline)
            throw new Error(`${sc.name}: timed out waiting for ${what} (status ${p.status}, step ${p.currentStep})`);
          await new Promise((r) => setTimeout(r, 150));
        }
      };
      await sc.drive?.(h, until);
      const result = (await h.result()) as { status: string };
      const out = join(outRoot, release, sc.name);
      rmSync(out, { recursive: true, force: true });
      mkdirSync(out, { recursive: true });
      const all = await histories(client, h);
      writeFileSync(join(out, 'PATH.txt'), `${sc.path}\nresult: ${result.status}\n`);
      for (const { workflowId, runId, history } of all) {
        // The workflow id must survive in the name: the replayer needs it (child ids derive from it).
        writeFileSync(
          join(out, `${encodeURIComponent(workflowId)}~${runId}.binpb`),
          temporal.api.history.v1.History.encode(history).finish(),
        );
      }
      process.stdout.write(
        `${sc.name}: ${result.status}, ${all.length} histories, ${all[0]!.history.events?.length ?? 0} parent events\n`,
      );
    }
  } finally {
    worker.shutdown();
    await running;
    await connection.close();
    await client.connection.close();
    receiver.close();
    await stopDevServer(stateDir);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
