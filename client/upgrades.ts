// What the CLI asks of a running upgrade, with every server-side refusal turned into a sentence.
import { userInfo } from 'node:os';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { Inventory } from '../inventory/schema';
import {
  abortSignal,
  approveSignal,
  approveUpdate,
  decideSignal,
  decideUpdate,
  setTemplatesUpdate,
  progressQuery,
  upgradeWorkflowId,
  type DecideInput,
  type Phase,
  type Progress,
  type UpgradeInput,
  type UpgradeResult,
} from '../common/messages';
import { inputInventory } from '../common/nodeRuns';
import { computeBatches, drainedServices } from '../common/topology';
import { NovaCloud } from '../common/searchAttributes';
import { novaUpgrade } from '../workflows/upgrade';

export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export function operatorName(): string {
  return process.env.NOVA_UPGRADE_OPERATOR ?? userInfo().username;
}

export function staticSummary(inv: Inventory): string {
  const apis = drainedServices(inv).length;
  const batches = computeBatches(inv);
  const computes = batches.reduce((n, b) => n + b.nodes.length, 0);
  return `nova ${inv.release.from} → ${inv.release.to} on ${inv.cloud}, ${apis} API node${apis === 1 ? '' : 's'}, ${batches.length} compute batch${batches.length === 1 ? '' : 'es'} of ${inv.compute.batchSize} (${computes} computes)`;
}

export async function startUpgrade(
  client: Client,
  taskQueue: string,
  inv: Inventory,
  opts: { workflowId?: string; autoApprove: Phase[] },
): Promise<WorkflowHandle<typeof novaUpgrade>> {
  const workflowId = opts.workflowId ?? upgradeWorkflowId(inv.cloud);
  const input: UpgradeInput = {
    inventory: inputInventory(inv),
    autoApprove: opts.autoApprove,
    startedBy: operatorName(),
  };
  try {
    return await client.workflow.start(novaUpgrade, {
      taskQueue,
      workflowId,
      args: [input],
      // A finished upgrade may be followed by another; a running one is the lock.
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      workflowIdConflictPolicy: 'FAIL',
      typedSearchAttributes: [{ key: NovaCloud, value: inv.cloud }],
      staticSummary: staticSummary(inv),
      staticDetails: `Started by ${input.startedBy}. Auto-approved phases: ${opts.autoApprove.length ? opts.autoApprove.join(', ') : 'none'}.`,
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw new CliError(
        `an upgrade of cloud "${inv.cloud}" is already running as workflow ${workflowId}; watch it with "nova-upgrade watch ${workflowId}"`,
      );
    }
    throw err;
  }
}

async function describeOrExplain(handle: WorkflowHandle) {
  try {
    return await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError)
      throw new CliError(`no upgrade with workflow id "${handle.workflowId}"; "nova-upgrade list" shows them`);
    throw err;
  }
}

/** Updates are validated by a worker: with none polling, the CLI would wait forever. */
async function requireWorker(client: Client, taskQueue: string): Promise<void> {
  const res = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  });
  if (!res.pollers?.length)
    throw new CliError(`no worker is polling task queue "${taskQueue}"; start one with "nova-upgrade worker"`);
}

async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new CliError(`${what} got no answer within ${ms / 1000} s; is a worker running for this namespace?`)),
      ms,
    );
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function openUpgrade(client: Client, workflowId: string) {
  const handle = client.workflow.getHandle(workflowId);
  const desc = await describeOrExplain(handle);
  if (desc.status.name !== 'RUNNING')
    throw new CliError(
      `upgrade ${workflowId} is ${desc.status.name.toLowerCase()}; it takes no more approvals or decisions`,
    );
  return handle;
}

function updateRefusal(err: unknown): never {
  if (err instanceof WorkflowUpdateFailedError) {
    const cause = err.cause as Error | undefined;
    throw new CliError(`refused: ${cause?.message ?? err.message}`);
  }
  throw err;
}

export async function approvePhase(
  client: Client,
  taskQueue: string,
  workflowId: string,
  phase: Phase | undefined,
  comment?: string,
) {
  const handle = await openUpgrade(client, workflowId);
  await requireWorker(client, taskQueue);
  let target = phase;
  if (!target) {
    const p = await withDeadline(handle.query(progressQuery), 30_000, 'the progress query');
    if (!p.pendingApproval)
      throw new CliError(`upgrade ${workflowId} is not waiting for an approval (status: ${p.status})`);
    target = p.pendingApproval.phase;
  }
  try {
    return await withDeadline(
      handle.executeUpdate(approveUpdate, {
        args: [{ phase: target, approver: operatorName(), ...(comment ? { comment } : {}) }],
      }),
      30_000,
      'the approval',
    );
  } catch (err) {
    return updateRefusal(err);
  }
}

export async function decide(
  client: Client,
  taskQueue: string,
  workflowId: string,
  input: Omit<DecideInput, 'by'>,
): Promise<string> {
  const handle = await openUpgrade(client, workflowId);
  await requireWorker(client, taskQueue);
  try {
    return await withDeadline(
      handle.executeUpdate(decideUpdate, { args: [{ ...input, by: operatorName() }] }),
      30_000,
      `the ${input.action} decision`,
    );
  } catch (err) {
    return updateRefusal(err);
  }
}

/**
 * Corrects command templates of a held upgrade; the workflow checks them as the inventory's
 * are, refuses unless a step is held, and records the change (history and progress).
 */
export async function setTemplates(
  client: Client,
  taskQueue: string,
  workflowId: string,
  templates: Record<string, string>,
  reason?: string,
): Promise<string> {
  const handle = await openUpgrade(client, workflowId);
  await requireWorker(client, taskQueue);
  try {
    return await withDeadline(
      handle.executeUpdate(setTemplatesUpdate, {
        args: [{ templates, by: operatorName(), ...(reason ? { reason } : {}) }],
      }),
      30_000,
      'the template change',
    );
  } catch (err) {
    return updateRefusal(err);
  }
}

/**
 * The approval as a signal: accepted by the server whether or not a worker polls, applied when
 * one runs the workflow. A signal cannot be refused, so the workflow records an invalid one as
 * a warning instead (gates.ts).
 */
export async function signalApproval(
  client: Client,
  workflowId: string,
  phase: Phase,
  comment?: string,
): Promise<void> {
  const handle = await openUpgrade(client, workflowId);
  await handle.signal(approveSignal, { phase, approver: operatorName(), ...(comment ? { comment } : {}) });
}

/** A decision at a held step as a signal, for when no worker polls; see signalApproval. */
export async function signalDecision(
  client: Client,
  workflowId: string,
  input: Omit<DecideInput, 'by'>,
): Promise<void> {
  const handle = await openUpgrade(client, workflowId);
  await handle.signal(decideSignal, { ...input, by: operatorName() });
}

export async function requestAbort(client: Client, workflowId: string, reason?: string): Promise<void> {
  const handle = await openUpgrade(client, workflowId);
  await handle.signal(abortSignal, { by: operatorName(), ...(reason ? { reason } : {}) });
}

export type UpgradeView =
  | { running: true; progress: Progress }
  | { running: false; status: string; result?: UpgradeResult; progress?: Progress };

export async function viewUpgrade(client: Client, workflowId: string): Promise<UpgradeView> {
  const handle = client.workflow.getHandle(workflowId);
  const desc = await describeOrExplain(handle);
  if (desc.status.name === 'RUNNING') {
    try {
      return { running: true, progress: await withDeadline(handle.query(progressQuery), 15_000, 'the progress query') };
    } catch (err) {
      if (err instanceof CliError)
        throw new CliError(
          `upgrade ${workflowId} is running but no worker answered; start one with "nova-upgrade worker"`,
        );
      throw err;
    }
  }
  if (desc.status.name === 'COMPLETED')
    return { running: false, status: 'completed', result: (await handle.result()) as UpgradeResult };
  return { running: false, status: desc.status.name.toLowerCase() };
}
