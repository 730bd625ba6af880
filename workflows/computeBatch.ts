// One batch of nova-compute nodes in a child workflow of its own, so the parent's history
// stays bounded however many hundreds of computes the cloud has.
import { ApplicationFailure, setCurrentDetails } from '@temporalio/workflow';
import type { Inventory } from '../inventory/schema';
import { Ops } from './ops';
import { isComputeOnly, nodeByName, type ComputeBatch } from './plan';
import { describeFailure } from './steps';

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
  const ops = new Ops(inv);
  const label = `batch ${input.batch.index}/${input.batches}`;
  const nodes = input.batch.nodes.map((n) => nodeByName(inv, n));
  const hosts = nodes.map((n) => n.novaHost);
  const notes: string[] = [];
  let changed = false;
  let stage = 'start';
  const track = (o: { summary: string; alreadyDone?: boolean }) => {
    notes.push(o.summary);
    if (!o.alreadyDone) changed = true;
  };
  const at = (s: string) => {
    stage = s;
    setCurrentDetails(`${label}: ${s}`);
  };
  try {
    for (const n of nodes.filter(isComputeOnly)) {
      at(`set [upgrade_levels] compute = auto on ${n.name}`);
      track(await ops.pinComputeRpc(n.name));
    }
    at(`disable ${hosts.join(', ')} for scheduling`);
    track(await ops.disableComputes(hosts, `nova-upgrade to ${inv.release.to} (${label})`));
    at(`wait until no instance task is in progress on ${hosts.join(', ')}`);
    track(await ops.waitForNoTasks(hosts));
    const stoppedAt: Record<string, string> = {};
    for (const n of nodes) {
      const unit = n.services.find((s) => s.kind === 'compute')!.unit;
      at(`install nova ${inv.release.to} on ${n.name}`);
      track(await ops.installCode(n.name, `${input.key}/install-${n.name}`));
      at(`restart ${unit} on ${n.name} (graceful stop, start on new code)`);
      const restarted = await ops.restartComputeService(n.name, unit, `${input.key}/restart-${n.name}`);
      stoppedAt[n.novaHost] = restarted.stoppedAt;
      track(restarted);
    }
    at(`wait until ${hosts.join(', ')} report up with a fresh heartbeat`);
    track(await ops.waitForComputesUp(hosts, stoppedAt));
    at(`enable ${hosts.join(', ')} for scheduling`);
    track(await ops.enableComputes(hosts));
  } catch (err) {
    throw ApplicationFailure.create({
      type: 'ComputeBatchFailed',
      nonRetryable: true,
      message: `${label} failed at "${stage}": ${describeFailure(err)}`,
      details: [{ stage, notes }],
    });
  }
  return { summary: `${label}: ${hosts.join(', ')} run nova ${inv.release.to}`, alreadyDone: !changed, notes };
}
