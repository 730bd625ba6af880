// Activities that answer like the real ones but touch nothing, for tests of the workflow's
// orchestration (gates, holds, aborts, ordering) on the real Temporal server. The effects
// themselves are tested against real programs elsewhere and end to end on the lab.
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { progressQuery } from '../../common/messages';
import { ApplicationFailure } from '@temporalio/common';
import type { Activities } from '../../activities';
import type { CommandRecord } from '../../activities/ssh/types';

export interface Call {
  name: string;
  input: Record<string, unknown>;
}

export interface Script {
  calls: Call[];
  /** activity name → how many more times it fails (Infinity: always). */
  failures: Map<string, number>;
  /** Optional predicate narrowing which calls of that activity fail. */
  failWhen?: (call: Call) => boolean;
  /** Answers that replace the default for an activity. */
  overrides?: Partial<Record<keyof Activities, (input: Record<string, unknown>) => unknown>>;
}

/**
 * A Script that always reads the current one: a worker keeps the activities it was created with,
 * so each test (or corpus scenario) swaps in a fresh script behind these getters.
 */
export function liveScript(current: () => Script): Script {
  return {
    get calls() {
      return current().calls;
    },
    get failures() {
      return current().failures;
    },
    get failWhen() {
      return current().failWhen;
    },
    get overrides() {
      return current().overrides;
    },
  };
}

export function newScript(): Script {
  return { calls: [], failures: new Map() };
}

const GENERIC = { summary: 'ok', alreadyDone: false, commands: [] };

const SPECIFIC: Partial<Record<keyof Activities, (input: Record<string, unknown>) => unknown>> = {
  runUpgradeCheck: () => ({ ...GENERIC, outcome: 'success', checks: [], warnings: [] }),
  findOrphanedServices: () => ({ ...GENERIC, orphans: [] }),
  checkServiceVersions: () => ({
    ...GENERIC,
    rowsPerCell: {},
    report: {
      to: '31.0.0',
      oldestSupportedServiceVersion: 66,
      oldestSupported: 'Caracal',
      minimumComputeVersion: 67,
      novaWouldStart: true,
      tooOld: [],
      pinning: [],
      notes: [],
      summary: 'every counted compute is at 66 or newer (scripted)',
    },
  }),
  deleteServiceRecords: () => ({ ...GENERIC, deleted: [] }),
  checkNodesAccessChunk: (input) => {
    const nodes = input.nodes as { sudo: boolean }[];
    return {
      ...GENERIC,
      summary: `logged in to ${nodes.length} of ${nodes.length} node(s) (scripted)`,
      checked: nodes.length,
      sudo: nodes.filter((n) => n.sudo).length,
      loginUsers: ['root'],
      refused: [],
    };
  },
  recordServerWeights: () => ({ ...GENERIC, weights: {} }),
  readServiceState: () => ({
    ...GENERIC,
    mainPid: 100,
    activeState: 'active',
    subState: 'running',
    startedMonotonic: 1,
  }),
  readCodeVersion: () => ({ ...GENERIC, version: '31.0.0' }),
  checkApiServesVersion: () => ({ ...GENERIC, maxMicroversion: '2.100', minMicroversion: '2.1' }),
  readBackendCounters: () => ({ ...GENERIC, summary: 'no retries, redispatches or errors' }),
  notifyWebhook: () => ({ delivered: true, attempts: 1, summary: 'notification delivered (scripted)' }),
  runVipProbe: async () => {
    // Like the real probe: runs until the workflow asks it to stop (or cancels it), then
    // reports its aggregates.
    const ctx = Context.current();
    const beat = setInterval(() => ctx.heartbeat(), 200);
    await untilProbeStop(ctx);
    clearInterval(beat);
    return {
      requests: 10,
      failedRequests: 0,
      failuresByKind: {},
      firstFailures: [],
      latencyMs: { p50: 1, p95: 2, p99: 3, max: 4 },
      versionDecreases: 0,
      maxMicroversionSeen: '2.100',
      requestsByBackend: {},
      perClient: [],
      durationSeconds: 1,
      running: false,
    };
  },
};

export const ACTIVITY_NAMES: (keyof Activities)[] = [
  'checkLoadBalancers',
  'recordServerWeights',
  'drainApiServer',
  'waitForNoSessions',
  'shutdownSessions',
  'enableApiServer',
  'switchOverApiServers',
  'waitForServerUp',
  'readBackendCounters',
  'installCode',
  'readCodeVersion',
  'installPlacement',
  'upgradePlacement',
  'syncApiDb',
  'syncCellDb',
  'runUpgradeCheck',
  'runOnlineDataMigrations',
  'setUpgradeLevelsCompute',
  'readServiceState',
  'restartService',
  'restartServiceChecked',
  'stopService',
  'startService',
  'hupService',
  'hupServices',
  'disableComputeServices',
  'enableComputeServices',
  'waitForNoTasksInProgress',
  'waitForComputesUp',
  'findOrphanedServices',
  'pointComputeEndpointAtVip',
  'runTempest',
  'checkApiServesVersion',
  'runVipProbe',
  'notifyWebhook',
  'checkNodesAccess',
  'checkNodesAccessChunk',
  'openConnections',
  'checkCells',
  'checkServiceVersions',
  'deleteServiceRecords',
];

/** A plausible audit record for an activity that names a node, so `history` has rows to show. */
function scriptedCommands(name: string, input: Record<string, unknown>): CommandRecord[] {
  const target = input.target as { node?: unknown } | undefined;
  const node = typeof target?.node === 'string' ? target.node : typeof input.node === 'string' ? input.node : undefined;
  if (!node) return [];
  const command =
    [input.command, input.restartCommand, input.stopCommand, input.startCommand, input.listCommand].find(
      (c): c is string => typeof c === 'string',
    ) ?? `${name} (scripted)`;
  return [{ node, command, exitCode: 0, durationMs: 12 }];
}

function withCommands(name: string, input: Record<string, unknown>, out: unknown): unknown {
  const rec = out as { commands?: unknown } | null;
  if (rec && typeof rec === 'object' && Array.isArray(rec.commands) && rec.commands.length === 0)
    return { ...rec, commands: scriptedCommands(name, input) };
  return out;
}

let probeClient: Client | undefined;

/** The scripted probe asks the workflow through this client whether to stop, as the real one does. */
export function useProbeClient(client: Client): void {
  probeClient = client;
}

/** Resolves when the workflow asks its probe to stop (through the probe client) or cancels it. */
export async function untilProbeStop(ctx: Context): Promise<void> {
  const client = probeClient;
  const asked = client
    ? (async () => {
        const h = client.workflow.getHandle(ctx.info.workflowExecution!.workflowId);
        while (!ctx.cancellationSignal.aborted) {
          if ((await h.query(progressQuery).catch(() => undefined))?.probeStopRequested) return;
          await new Promise((r) => setTimeout(r, 200));
        }
      })()
    : new Promise<void>(() => undefined);
  await Promise.race([ctx.cancelled.catch(() => undefined), asked]);
}

export function scriptedActivities(
  script: Script,
): Record<string, (input: Record<string, unknown>) => Promise<unknown>> {
  return Object.fromEntries(
    ACTIVITY_NAMES.map((name) => [
      name,
      async (input: Record<string, unknown>) => {
        const call = { name, input };
        script.calls.push(call);
        const left = script.failures.get(name) ?? 0;
        if (left > 0 && (!script.failWhen || script.failWhen(call))) {
          script.failures.set(name, left - 1);
          throw ApplicationFailure.create({
            type: 'Scripted',
            nonRetryable: true,
            message: `${name} failed as scripted`,
          });
        }
        const specific = script.overrides?.[name] ?? SPECIFIC[name];
        return withCommands(name, input, specific ? await specific(input) : GENERIC);
      },
    ]),
  );
}
