// One batch of nova-compute nodes in a child workflow of its own, so the parent's history
// stays bounded however many hundreds of computes the cloud has. Its lines are declared in
// runbook/batchSteps.ts, where the dry run reads them too.
import { ApplicationFailure, isCancellation, setCurrentDetails } from '@temporalio/workflow';
import type { ComputeBatch } from '../common/topology';
import type { Inventory } from '../inventory/schema';
import { describeFailure } from './failures';
import { createOps } from './ops';
import { computeBatchSteps, type BatchContext } from './runbook/batchSteps';

export interface ComputeBatchInput {
  /** Only the batch's nodes and the controller: the child's history carries no more. */
  inventory: Inventory;
  batch: ComputeBatch;
  batches: number;
  /** The parent step's run key: detached commands reattach across worker deaths. */
  key: string;
}

export interface ComputeBatchResult {
  summary: string;
  alreadyDone: boolean;
  notes: string[];
}

export async function upgradeComputeBatch(input: ComputeBatchInput): Promise<ComputeBatchResult> {
  const inv = input.inventory;
  const label = `batch ${input.batch.index}/${input.batches}`;
  const b: BatchContext = { ops: createOps(inv), key: input.key, stoppedAt: {}, leftDisabled: [] };
  const notes: string[] = [];
  let changed = false;
  let stage = 'start';
  try {
    for (const s of computeBatchSteps(inv, input.batch, label)) {
      stage = s.title;
      setCurrentDetails(`${label}: ${s.title}`);
      const out = await s.run(b);
      notes.push(out.summary);
      if (!out.alreadyDone) changed = true;
    }
  } catch (err) {
    // A cancel (the parent's abort or cancel) stays a cancel, so the parent unwinds instead of holding.
    if (isCancellation(err)) throw err;
    throw ApplicationFailure.create({
      type: 'NovaComputeBatchFailed',
      nonRetryable: true,
      message: `${label} failed at "${stage}": ${describeFailure(err)}`,
      details: [{ stage, notes }],
    });
  }
  const hosts = input.batch.nodes.map((n) => inv.nodes.find((x) => x.name === n)!.novaHost);
  const kept = b.leftDisabled.length
    ? `; ${b.leftDisabled.join(', ')} left disabled for scheduling, as an operator set them`
    : '';
  return { summary: `${label}: ${hosts.join(', ')} run nova ${inv.release.to}${kept}`, alreadyDone: !changed, notes };
}
