// The parent's side of one compute batch: it starts the batch's child, keeps the batch's
// aggregates (counts, durations, failed nodes) in the progress, and holds each failed node by
// itself for the operator's retry, skip or abort. Per-node detail stays in the children.
import {
  ApplicationFailure,
  ChildWorkflowFailure,
  executeChild,
  isCancellation,
  patched,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { BatchAggregate, FailedNodeRecord, Outcome } from '../../common/messages';
import { failureBudget, inventoryForBatch, nodeByName, type ComputeBatch } from '../../common/topology';
import { sshTargetFor, type SshTarget } from '../../common/sshTarget';
import type { Inventory } from '../../inventory/schema';
import { upgradeComputeBatch, type FailedNode, type NodeMemo } from '../computeBatch';
import { AbortRequested, describeFailure } from '../failures';
import { hostList } from '../ops/computes';
import type { RunContext } from './types';

/** The memo a failed child carried in its failure's details, if any. */
function memoOf(err: unknown): Record<string, NodeMemo> | undefined {
  const cause = err instanceof ChildWorkflowFailure ? err.cause : undefined;
  if (!(cause instanceof ApplicationFailure)) return undefined;
  const d: unknown = cause.details?.[0];
  if (typeof d !== 'object' || d === null || !('memo' in d)) return undefined;
  const memo = (d as { memo: unknown }).memo;
  return typeof memo === 'object' && memo !== null ? (memo as Record<string, NodeMemo>) : undefined;
}

function aggregate(rt: RunContext, batch: ComputeBatch): BatchAggregate {
  const c = rt.state.progress.compute;
  const list = (c.batches ??= []);
  let a = list.find((x) => x.index === batch.index);
  if (!a) {
    a = { index: batch.index, nodes: batch.nodes.length, done: 0, failed: 0, skipped: 0, status: 'running' };
    list.push(a);
  }
  return a;
}

export function computeBatchRun(
  inv: Inventory,
  batch: ComputeBatch,
  batches: number,
  /** The batch after this one, whose nodes this one's child logs in to ahead of it. */
  next?: ComputeBatch,
): (rt: RunContext, key: string) => Promise<Outcome> {
  const label = `batch ${batch.index}/${batches}`;
  // What earlier attempts at this batch learnt per node; an operator's retry carries it.
  let memo: Record<string, NodeMemo> = {};
  const stepId = `compute-batch:${batch.index}`;
  const child = (nodes: string[], key: string, idSuffix: string, warmNext?: SshTarget[]) =>
    executeChild(upgradeComputeBatch, {
      args: [
        {
          inventory: inventoryForBatch(inv, nodes),
          batch: { index: batch.index, nodes },
          batches,
          key,
          memo: Object.fromEntries(nodes.filter((n) => memo[n]).map((n) => [n, memo[n]!])),
          ...(warmNext?.length ? { warmNext } : {}),
        },
      ],
      workflowId: `${workflowInfo().workflowId}/compute-batch-${batch.index}/${idSuffix}`,
      staticSummary: `upgrade nova-compute ${label}: ${hostList(nodes)}`,
    });

  return async (rt, key) => {
    const suffix = key.split('/').pop()!;
    if (!patched('parallel-compute-batch')) {
      const res = await executeChild(upgradeComputeBatch, {
        args: [{ inventory: inventoryForBatch(inv, batch.nodes), batch, batches, key }],
        workflowId: `${workflowInfo().workflowId}/compute-batch-${batch.index}/${suffix}`,
        staticSummary: `upgrade nova-compute ${label}: ${batch.nodes.join(', ')}`,
      });
      rt.state.progress.compute.batchesDone += 1;
      rt.state.progress.compute.nodesDone += batch.nodes.length;
      return { summary: res.summary, alreadyDone: res.alreadyDone };
    }
    const fresh = !rt.state.progress.compute.batches?.some((x) => x.index === batch.index);
    if (fresh) await beforeBatch(inv, rt, stepId, batch);
    const agg = aggregate(rt, batch);
    agg.status = 'running';
    agg.startedAt ??= rt.state.now();
    rt.state.publish();
    // Since this patch the child logs in to the next batch's nodes while it installs: at 1,000
    // virtual computes a batch's first exchanges waited 4.2 s on handshakes (bench/fleet.ts).
    const warmNext =
      next && patched('compute-warm-next-batch')
        ? next.nodes.map((n) => sshTargetFor(inv, nodeByName(inv, n)))
        : undefined;
    let res;
    try {
      res = await child(batch.nodes, key, suffix, warmNext);
    } catch (err) {
      memo = { ...memo, ...(memoOf(err) ?? {}) };
      agg.status = 'held';
      throw err;
    }
    memo = { ...memo, ...(res.memo ?? {}) };
    const add = (r: { nodesDone?: number; slowestNodeMs?: number; totalNodeMs?: number }) => {
      agg.done += r.nodesDone ?? 0;
      agg.slowestNodeMs = Math.max(agg.slowestNodeMs ?? 0, r.slowestNodeMs ?? 0);
      agg.totalNodeMs = (agg.totalNodeMs ?? 0) + (r.totalNodeMs ?? 0);
      rt.state.progress.compute.nodesDone += r.nodesDone ?? 0;
    };
    add(res);
    const summaries = [res.summary];
    let alreadyDone = res.alreadyDone;
    const skipped: string[] = [];
    for (const first of res.failed ?? []) {
      const outcome = await settleNode(rt, stepId, batch.index, first, agg, async (f, attempt) => {
        try {
          const r = await child([f.node], `${key}/${f.node}-r${attempt}`, `${suffix}-${f.node}-r${attempt}`);
          memo = { ...memo, ...(r.memo ?? {}) };
          add(r);
          if (!r.alreadyDone) alreadyDone = false;
          return r.failed?.[0];
        } catch (err) {
          if (isCancellation(err)) throw err;
          memo = { ...memo, ...(memoOf(err) ?? {}) };
          return { ...f, stage: 'its batch', error: describeFailure(err) };
        }
      });
      if (outcome === 'skipped') skipped.push(first.host);
    }
    if (skipped.length)
      summaries.push(`skipped ${hostList(skipped)}: left on nova ${inv.release.from}, disabled for scheduling`);
    agg.status = 'done';
    agg.endedAt = rt.state.now();
    rt.state.progress.compute.batchesDone += 1;
    return { summary: summaries.join('; '), alreadyDone };
  };
}

/**
 * Before a batch's first attempt: the pause between batches, then the failure budget. Once
 * more nodes have failed than compute.maxFailedNodes allows, no new batch starts by itself:
 * the operator's retry starts it anyway (recorded), abort stops the upgrade.
 */
async function beforeBatch(inv: Inventory, rt: RunContext, stepId: string, batch: ComputeBatch): Promise<void> {
  const c = rt.state.progress.compute;
  if (inv.compute.pauseSeconds && c.batches?.length) await sleep(inv.compute.pauseSeconds * 1000);
  const budget = failureBudget(inv);
  if (budget === undefined) return;
  const failed = (c.failedNodes ?? []).filter((f) => f.status !== 'done');
  if (failed.length <= budget) return;
  const decision = await rt.hold!(
    stepId,
    `${failed.length} compute node${failed.length === 1 ? '' : 's'} failed (${hostList(failed.map((f) => f.host))}), more than compute.maxFailedNodes allows (${budget}): batch ${batch.index} does not start by itself; retry starts it anyway`,
    ['retry', 'abort'],
  );
  if (decision.action === 'abort') throw new AbortRequested(decision.by, decision.reason);
  rt.state.progress.warnings.push(
    `batch ${batch.index} started past the failure budget (${failed.length} failed > ${budget}) on ${decision.by}'s word`,
  );
}

/**
 * Holds one failed node until the operator answers: retry runs a child for that node alone
 * (which reads the node's state first), skip leaves it on the old release and disabled, abort
 * unwinds to the abort handler.
 */
async function settleNode(
  rt: RunContext,
  stepId: string,
  batch: number,
  first: FailedNode,
  agg: BatchAggregate,
  retry: (f: FailedNode, attempt: number) => Promise<FailedNode | undefined>,
): Promise<'done' | 'skipped'> {
  const c = rt.state.progress.compute;
  const record: FailedNodeRecord = { ...first, batch, status: 'held' };
  (c.failedNodes ??= []).push(record);
  agg.failed += 1;
  let f: FailedNode = first;
  for (let attempt = 1; ; attempt++) {
    record.status = 'held';
    record.stage = f.stage;
    record.error = f.error;
    agg.status = 'held';
    const decision = await rt.hold!(
      stepId,
      `${f.host} (${f.node}) failed at "${f.stage}": ${f.error}; the rest of its batch finished`,
      ['retry', 'skip', 'abort'],
    );
    agg.status = 'running';
    if (decision.action === 'abort') throw new AbortRequested(decision.by, decision.reason);
    if (decision.action === 'skip') {
      record.status = 'skipped';
      record.by = decision.by;
      if (decision.reason) record.reason = decision.reason;
      agg.skipped += 1;
      rt.state.publish();
      return 'skipped';
    }
    record.status = 'retrying';
    rt.state.publish();
    const again = await retry(f, attempt);
    if (!again) {
      record.status = 'done';
      agg.failed -= 1;
      rt.state.publish();
      return 'done';
    }
    f = again;
  }
}
