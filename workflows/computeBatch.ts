// One batch of nova-compute nodes in a child workflow of its own, so the parent's history
// stays bounded however many hundreds of computes the cloud has. Its lines are declared in
// runbook/batchSteps.ts, where the dry run reads them too.
//
// Since `parallel-compute-batch`, a batch's nodes are upgraded at once (up to
// `compute.parallel`), and a node that fails no longer fails its batch: its batch-mates finish,
// and the child returns the failed nodes for the parent to hold one by one (holds stay in the
// parent: a child cannot receive the parent's signals).
import { ApplicationFailure, isCancellation, patched, setCurrentDetails, workflowInfo } from '@temporalio/workflow';
import {
  computeParallel,
  computeReloadsByRestart,
  computeUnit,
  isComputeOnly,
  nodeByName,
  type ComputeBatch,
} from '../common/topology';
import type { Inventory } from '../inventory/schema';
import type { SshTarget } from '../common/sshTarget';
import { describeFailure } from './failures';
import { forEachLimit } from './limit';
import { createOps } from './ops';
import { hostList } from './ops/computes';
import { computeBatchSteps, type BatchContext } from './runbook/batchSteps';
import { setUpgradeLevels } from './runbook/pin';

/** What the batch learnt about a node, carried into an operator's retry so the node's state decides. */
export interface NodeMemo {
  /** nova-compute's process when the batch first reached the node. */
  before?: { mainPid: number; startedMonotonic: number };
  /** Workflow time once its nova-compute was stopped: later heartbeats are the new process's. */
  stoppedAt?: string;
}

export interface FailedNode {
  node: string;
  host: string;
  /** The line of the batch it failed at. */
  stage: string;
  error: string;
}

export interface ComputeBatchInput {
  /** Only the batch's nodes and the controller: the child's history carries no more. */
  inventory: Inventory;
  batch: ComputeBatch;
  batches: number;
  /** The parent step's run key: detached commands reattach across worker deaths. */
  key: string;
  /** From earlier attempts at this batch (an operator's retry), per node name. */
  memo?: Record<string, NodeMemo>;
  /**
   * Since `compute-warm-next-batch`: the next batch's nodes, logged in to once this batch has
   * reached its own, so that the next batch starts on open connections.
   */
  warmNext?: SshTarget[];
}

export interface ComputeBatchResult {
  summary: string;
  alreadyDone: boolean;
  notes: string[];
  /** Since parallel-compute-batch: nodes that failed while their batch-mates finished. */
  failed?: FailedNode[];
  memo?: Record<string, NodeMemo>;
  /** Nodes upgraded and enabled (or left disabled as an operator had them). */
  nodesDone?: number;
  /** The slowest node's chain (install → up) and the sum over nodes, in ms of workflow time. */
  slowestNodeMs?: number;
  totalNodeMs?: number;
  leftDisabled?: string[];
}

export async function upgradeComputeBatch(input: ComputeBatchInput): Promise<ComputeBatchResult> {
  const label = `batch ${input.batch.index}/${input.batches}`;
  if (patched('parallel-compute-batch')) return parallelBatch(input, label);
  const inv = input.inventory;
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

const isActive = (s: { activeState: string }) => s.activeState === 'active';

async function parallelBatch(input: ComputeBatchInput, label: string): Promise<ComputeBatchResult> {
  const inv = input.inventory;
  const ops = createOps(inv);
  const nodes = input.batch.nodes.map((name) => nodeByName(inv, name));
  const hosts = nodes.map((n) => n.novaHost);
  const memo: Record<string, NodeMemo> = { ...(input.memo ?? {}) };
  const failed: FailedNode[] = [];
  const reason = `nova-upgrade to ${inv.release.to} (${label})`;
  let changed = false;
  let stage = `disable ${hostList(hosts)} for scheduling`;
  // Batch-wide lines fail the batch: the parent holds it whole, and carries `memo` into a retry.
  const batchFailed = (err: unknown) => {
    if (isCancellation(err)) return err;
    return ApplicationFailure.create({
      type: 'NovaComputeBatchFailed',
      nonRetryable: true,
      message: `${label} failed at "${stage}": ${describeFailure(err)}`,
      details: [{ stage, memo }],
    });
  };
  const track = (out: { alreadyDone?: boolean }) => {
    if (!out.alreadyDone) changed = true;
  };
  // Taking the batch out of scheduling, then waiting for its instances' tasks to end. Before
  // `compute-disable-beside-install` both ran before any node's chain; since, they run beside the
  // reads, pins and installs, which change only the code on disk and nova.conf (nothing the
  // running nova-compute reads), and every stop waits for them. At 1,000 virtual computes they
  // were 2.5 s and 1.6 s of each 50-node batch, in series before its 10 s installs (bench/fleet.ts,
  // the batch profile); on a real cloud each is 50 openstack calls of 1-2 s, 8 at once.
  let gateError: unknown;
  // Beside the chains, the details say both at once (below), not each line of the gate.
  const takeOutOfScheduling = async (details: boolean) => {
    try {
      if (details) setCurrentDetails(`${label}: ${stage}`);
      track(await ops.computes.disableComputeServices(hosts, reason));
      // A restart under a running migration or resize would break the instance's task.
      stage = `wait until no instance task is in progress on ${hostList(hosts)}`;
      if (details) setCurrentDetails(`${label}: ${stage}`);
      await ops.computes.waitForNoTasksInProgress(hosts);
    } catch (err) {
      gateError = err;
    }
  };
  const gateBesideInstalls = patched('compute-disable-beside-install');
  const gate = gateBesideInstalls ? takeOutOfScheduling(false) : undefined;
  if (!gateBesideInstalls) {
    await takeOutOfScheduling(true);
    if (gateError !== undefined) throw batchFailed(gateError);
  }

  // Each node's chain, up to `parallel` at once; a failure stays with its node.
  // A run started before it reads nova-compute's state, then installs, one after the other.
  const readsAtOnce = patched('compute-read-and-install-at-once');
  // Since this patch a compute-only node's pin is written beside the read and the install: it
  // touches nova.conf only, which nothing reads before the restart. One after the other it cost
  // each chain 1.0-1.3 s on the scale lab (bench/fleet.ts, 100 computes, the batch profile).
  const pinAtOnce = readsAtOnce && patched('compute-pin-read-install-at-once');
  const restarted: string[] = [];
  const spent: Record<string, number> = {};
  // The next batch's logins, once this batch's first reads have all answered (its own handshakes
  // done): beside the installs, on the cores they leave idle. Never awaited, so nodes that do not
  // answer cannot hold this batch; nor is its failure this batch's: the next batch's own steps
  // decide about its nodes.
  let warming: Promise<unknown> | undefined;
  let reached = 0;
  const warm = input.warmNext?.length && patched('compute-warm-next-batch') ? input.warmNext : undefined;
  const nodeReached = () => {
    reached += 1;
    if (warm && !warming && reached === Math.min(nodes.length, computeParallel(inv)))
      warming = ops.ssh.openConnections(warm, `batch ${input.batch.index + 1}/${input.batches}`).catch(() => undefined);
  };
  setCurrentDetails(
    `${label}: ${gate ? `take ${hostList(hosts)} out of scheduling, and beside it ` : ''}install and restart ${nodes.length} nodes, ${computeParallel(inv)} at once`,
  );
  await forEachLimit(nodes, computeParallel(inv), async (n) => {
    const unit = computeUnit(n);
    const m = (memo[n.name] ??= {});
    const began = Date.now();
    let at = 'start';
    try {
      const pinning = isComputeOnly(n) && n.configFiles.length > 0;
      const pinTitle = `set [upgrade_levels] compute = auto on ${n.name}`;
      if (pinning && !pinAtOnce) {
        at = pinTitle;
        track(await setUpgradeLevels(ops, n));
      }
      const read = () => ops.services.readServiceState(n.name, unit);
      const install = () => ops.nova.installCode(n.name, `${input.key}/install-${n.name}`);
      let now: Awaited<ReturnType<typeof read>>;
      if (readsAtOnce) {
        // The read of the running process and the install touch different things (the unit's
        // process, the code on disk): both before the stop, at once, one round trip fewer.
        at = `read ${unit} state and install nova ${inv.release.to} on ${n.name}`;
        const pin = pinning && pinAtOnce ? setUpgradeLevels(ops, n) : undefined;
        const reading = read();
        reading.then(nodeReached, nodeReached);
        const [r, i, p] = await Promise.allSettled([reading, install(), pin]);
        if (p.status === 'rejected') {
          at = pinTitle;
          throw p.reason;
        }
        if (p.value) track(p.value);
        if (r.status === 'rejected') {
          at = `read ${unit} state on ${n.name}`;
          throw r.reason;
        }
        if (i.status === 'rejected') {
          at = `install nova ${inv.release.to} on ${n.name}`;
          throw i.reason;
        }
        now = r.value;
        track(i.value);
      } else {
        at = `read ${unit} state on ${n.name}`;
        now = await read();
      }
      m.before ??= { mainPid: now.mainPid, startedMonotonic: now.startedMonotonic };
      if (!readsAtOnce) {
        at = `install nova ${inv.release.to} on ${n.name}`;
        track(await install());
      }
      // No stop before the batch is out of scheduling and its tasks ended; if that failed, the
      // batch fails whole below and no node of it is stopped.
      await gate;
      if (gateError !== undefined) return;
      // The node's state decides: a nova-compute stopped by an earlier attempt of this batch and
      // running a process started since, on the code just verified installed, already runs the
      // new release. An operator's retry must not stop it again.
      const fresh =
        m.stoppedAt !== undefined &&
        isActive(now) &&
        (now.mainPid !== m.before.mainPid || now.startedMonotonic !== m.before.startedMonotonic);
      if (!fresh) {
        const key = `${input.key}/restart-${n.name}`;
        at = `gracefully stop ${unit} on ${n.name}`;
        track(await ops.services.stopService(n.name, unit, `${key}/stop`));
        // Workflow time once the stop is done: a heartbeat newer than it can only come from the new process.
        m.stoppedAt = new Date().toISOString();
        at = `start ${unit} on ${n.name} on the new code`;
        track(await ops.services.startService(n.name, unit, `${key}/start`, 'on the new code'));
      }
      restarted.push(n.name);
    } catch (err) {
      if (isCancellation(err)) throw err;
      failed.push({ node: n.name, host: n.novaHost, stage: at, error: describeFailure(err) });
    } finally {
      spent[n.name] = Date.now() - began;
    }
  });

  // Every chain may have ended before the gate did (each node failed before its stop): the
  // child still waits for its own disable and task wait, and returns nothing while they run.
  await gate;
  if (gateError !== undefined) throw batchFailed(gateError);

  const up: string[] = [];
  const leftDisabled: string[] = [];
  try {
    const waiting = nodes.filter((n) => restarted.includes(n.name));
    if (waiting.length) {
      const began = Date.now();
      stage = `wait until ${hostList(waiting.map((n) => n.novaHost))} report up with a fresh heartbeat`;
      setCurrentDetails(`${label}: ${stage}`);
      const r = await ops.computes.waitForComputesUp(
        waiting.map((n) => n.novaHost),
        Object.fromEntries(waiting.map((n) => [n.novaHost, memo[n.name]!.stoppedAt ?? new Date(began).toISOString()])),
        true,
      );
      for (const n of waiting) {
        const late = r.notUp?.find((x) => x.host === n.novaHost);
        if (late) failed.push({ node: n.name, host: n.novaHost, stage: 'wait until up', error: late.why });
        else up.push(n.novaHost);
        spent[n.name] = (spent[n.name] ?? 0) + (Date.now() - began);
      }
    }
    if (up.length) {
      stage = `enable ${hostList(up)} for scheduling`;
      setCurrentDetails(`${label}: ${stage}`);
      const out = await ops.computes.enableComputeServices(up);
      track(out);
      leftDisabled.push(...(out.leftDisabled ?? []).map((l) => l.host));
    }
  } catch (err) {
    throw batchFailed(err);
  }
  const times = Object.values(spent);
  const kept = leftDisabled.length
    ? `; ${hostList(leftDisabled)} left disabled for scheduling, as an operator set them`
    : '';
  const bad = failed.length ? `; ${failed.length} failed: ${hostList(failed.map((f) => f.host))}` : '';
  return {
    summary: `${label}: ${up.length ? hostList(up) : 'no node'} run${up.length === 1 ? 's' : ''} nova ${inv.release.to}${kept}${bad}`,
    alreadyDone: !changed,
    notes: [],
    failed,
    memo,
    nodesDone: up.length,
    slowestNodeMs: times.length ? Math.max(...times) : 0,
    totalNodeMs: times.reduce((a, b) => a + b, 0),
    leftDisabled,
  };
}

export interface HupComputeBatchInput {
  /** Only the batch's nodes and the controller. */
  inventory: Inventory;
  batch: ComputeBatch;
  batches: number;
}

export interface HupComputeBatchResult {
  summary: string;
  done: string[];
  failed: FailedNode[];
}

/**
 * The SIGHUP that lifts the RPC pin, for one batch's nova-computes at once (up to
 * `compute.parallel`): in the batch's own child, so the parent's history grows by one child
 * per batch instead of one step per compute. A failed node is returned, not thrown: the
 * parent holds the batch's step and a retry HUPs only the nodes that failed.
 */
export async function hupComputeBatch(input: HupComputeBatchInput): Promise<HupComputeBatchResult> {
  const inv = input.inventory;
  const ops = createOps(inv);
  const nodes = input.batch.nodes.map((name) => nodeByName(inv, name));
  const done: string[] = [];
  const failed: FailedNode[] = [];
  // nova 34+ runs nova-compute where a SIGHUP stops its RPC server (computeReloadsByRestart):
  // a checked restart instead, keyed by this child's id (one per parent attempt) and the node.
  // Children of runs started before replay with the SIGHUP.
  const restart = computeReloadsByRestart(inv) && patched('compute-restart-not-sighup-on-threads');
  const verb = restart ? 'restart' : 'SIGHUP';
  setCurrentDetails(`${verb} nova-compute on ${nodes.length} nodes of batch ${input.batch.index}/${input.batches}`);
  await forEachLimit(nodes, computeParallel(inv), async (n) => {
    const unit = computeUnit(n);
    try {
      if (restart)
        await ops.services.restartServiceChecked(n.name, unit, `${workflowInfo().workflowId}/restart-${n.name}`);
      else await ops.services.hupService(n.name, unit);
      done.push(n.name);
    } catch (err) {
      if (isCancellation(err)) throw err;
      failed.push({
        node: n.name,
        host: n.novaHost,
        stage: `${verb} ${unit} on ${n.name}`,
        error: describeFailure(err),
      });
    }
  });
  return {
    summary: `${restart ? 'restarted' : 'SIGHUP'} nova-compute on ${hostList(done.length ? done : ['no node'])}${failed.length ? `; failed on ${hostList(failed.map((f) => f.node))}` : ''}`,
    done,
    failed,
  };
}
