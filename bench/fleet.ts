// bench/fleet: a real upgrade of N virtual computes of the scale lab (lab/fleet.ts), by a real
// worker process on a Temporal dev server of its own, and what it cost: wall time against the
// ideal, Temporal events in the parent and in the largest child, the largest payloads, the
// worker's peak RSS and CPU seconds, and the SSH connections it held open.
//
// The ideal is the sum over batches of the slowest node's chain (install + stop + start +
// heartbeat, the lab's settable times) at the given concurrency: with `parallel` lanes, a
// batch's chains are laid on the lanes in order and the batch ends with its last chain.
//
// Usage: npx tsx bench/fleet.ts [--computes 100,500,1000] [--batch 50] [--parallel 50]
//          [--times install,stop,start,heartbeat ms] [--plan-only]
// The 10,000-compute shape is planned only (bench/fleet-plan.ts): no machine of ours runs it.
// Subnet 127.2.0 (the lab) and 127.2.1.0 onwards (its computes); a Temporal dev server of its own.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { findFreePort, startDevServer, stopDevServer } from '../client/devServer';
import { repoRoot } from '../client/paths';
import { startUpgrade } from '../client/upgrades';
import { PHASES, progressQuery, type Progress, type UpgradeResult } from '../common/messages';
import { computeBatches, computeParallel } from '../common/topology';
import { loadInventory } from '../inventory/load';
import type { FleetTimes } from '../lab/fleet';
import { labDown, labUp } from '../lab/lab';
import { batchProfile, renderBatchProfile } from './batchProfile';
import { startWorkerProcess, stopWorkerProcess, workerPid } from '../worker/process';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : fallback;
};
const counts = opt('computes', '100,500,1000').split(',').map(Number);
const batchSize = Number(opt('batch', '50'));
const parallel = Number(opt('parallel', '50'));
const [installMs, stopMs, startMs, heartbeatMs] = opt('times', '10000,3000,3000,4000').split(',').map(Number) as [
  number,
  number,
  number,
  number,
];
const times: FleetTimes = { installMs, stopMs, startMs, heartbeatMs };
const root = join(tmpdir(), 'nova-upgrade-fleet-bench');
const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

/** Sum over batches of the last chain's end, `lanes` chains at once in the batch's order. */
export function idealMs(batches: string[][], lanes: number, chainMs: (node: string) => number): number {
  let total = 0;
  for (const b of batches) {
    const free = Array.from({ length: Math.min(lanes, b.length) }, () => 0);
    for (const n of b) {
      const i = free.indexOf(Math.min(...free));
      free[i] = free[i]! + chainMs(n);
    }
    total += Math.max(0, ...free);
  }
  return total;
}

/** Peak RSS (VmHWM) in bytes and CPU seconds of a live process. */
function procStats(pid: number): { hwm: number; cpu: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    return { hwm, cpu: (Number(f[11]) + Number(f[12])) / ticks };
  } catch {
    return undefined;
  }
}

/** Established TCP connections to port `port` on 127.2.0.0/16, from /proc/net/tcp. */
function sshConnections(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => {
      const f = l.trim().split(/\s+/);
      if (f.length < 4 || f[3] !== '01') return false;
      const [addr, p] = f[2]!.split(':');
      // Little-endian hex: 127.2.x.y is "yyxx027F".
      return p === hexPort && addr!.endsWith('027F');
    }).length;
}

interface PayloadMax {
  where: string;
  bytes: number;
}

/** Every payload in a history, by where it sits (e.g. activityTaskScheduledEventAttributes.input). */
export function payloads(events: unknown[]): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (v: unknown, where: string) => {
    if (v === null || typeof v !== 'object') return;
    if (v instanceof Uint8Array) return;
    const o = v as Record<string, unknown>;
    if (o.data instanceof Uint8Array && 'metadata' in o) {
      // The payload's own bytes and its metadata, as Temporal counts a payload's size.
      const meta = o.metadata as Record<string, Uint8Array> | null;
      const size = o.data.length + Object.values(meta ?? {}).reduce((n, m) => n + (m?.length ?? 0), 0);
      out.set(where, Math.max(out.get(where) ?? 0, size));
      return;
    }
    for (const [k, x] of Object.entries(o)) {
      const next = k.endsWith('EventAttributes')
        ? `${where}${k}`
        : where.includes('.')
          ? where
          : where.endsWith('EventAttributes')
            ? `${where}.${k}`
            : where;
      walk(x, next);
    }
  };
  // An activity's input and result are named by its type, so the largest one says which.
  const types = new Map<string, string>();
  for (const e of events as Array<Record<string, Record<string, unknown> | undefined>>) {
    const sched = e.activityTaskScheduledEventAttributes as { activityType?: { name?: string } } | undefined;
    const id = String(e.eventId ?? '');
    if (sched) types.set(id, sched.activityType?.name ?? '?');
    const done = (e.activityTaskCompletedEventAttributes ?? e.activityTaskScheduledEventAttributes) as
      { scheduledEventId?: unknown } | undefined;
    const type = sched ? types.get(id) : types.get(String(done?.scheduledEventId ?? ''));
    walk(e, type ? `${type} ` : '');
  }
  return out;
}

async function bundle(): Promise<string> {
  const path = join(root, 'workflow-bundle.js');
  const { code } = await bundleWorkflowCode({
    workflowsPath: join(repoRoot(), 'workflows', 'index.ts'),
    logger: new DefaultLogger('WARN'),
  });
  writeFileSync(path, code);
  return path;
}

/** Processes forked since boot, and the machine's busy CPU seconds, from /proc/stat. */
function machineCounters(): { forks: number; busyS: number } {
  const stat = readFileSync('/proc/stat', 'utf8');
  const cpu = (/^cpu\s+(.*)$/m.exec(stat)?.[1] ?? '').split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
  const busy = cpu.reduce((n, v, i) => (i === 3 || i === 4 || i > 7 ? n : n + v), 0);
  const ticks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  return { forks: Number(/^processes\s+(\d+)/m.exec(stat)?.[1] ?? 0), busyS: busy / ticks };
}

const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

async function one(client: Client, address: string, namespace: string, bundlePath: string, n: number) {
  const stateDir = join(root, `lab-${n}`);
  await labDown(stateDir);
  rmSync(stateDir, { recursive: true, force: true });
  const upT0 = Date.now();
  const lab = await labUp({ stateDir, subnet: '127.2.0', virtualComputes: n, fleetTimes: times });
  const labUpMs = Date.now() - upT0;
  const inv = loadInventory(lab.inventoryPath);
  inv.compute = { ...inv.compute, batchSize, parallel };
  // Tempest and the API nodes' own steps do not grow with the fleet; the compute batches do.
  inv.tempest.enabled = false;
  const workerDir = join(root, `worker-${n}`);
  const taskQueue = `fleet-bench-${n}-${Date.now()}`;
  await startWorkerProcess({ dir: workerDir, address, namespace, taskQueue, workflowBundlePath: bundlePath });
  const pid = workerPid(workerDir)!;
  let peakConn = 0;
  let last = procStats(pid);
  const sampler = setInterval(() => {
    last = procStats(pid) ?? last;
    peakConn = Math.max(peakConn, sshConnections(lab.options.sshPort));
  }, 500);
  const loadBefore = load();
  const before = machineCounters();
  const t0 = Date.now();
  const h = await startUpgrade(client, taskQueue, inv, { autoApprove: [...PHASES] });
  const result = (await h.result()) as UpgradeResult;
  const wallMs = Date.now() - t0;
  const progress: Progress = await h.query(progressQuery);
  clearInterval(sampler);
  last = procStats(pid) ?? last;
  const loadAfter = load();
  const after = machineCounters();
  const connAtEnd = sshConnections(lab.options.sshPort);

  const batches = progress.compute.batches ?? [];
  const batchWallMs = batches.reduce((s, b) => s + (Date.parse(b.endedAt ?? '') - Date.parse(b.startedAt ?? '')), 0);
  const computePhaseMs =
    Date.parse(batches.at(-1)?.endedAt ?? '') - Date.parse(batches[0]?.startedAt ?? '') || Number.NaN;
  const chain = times.installMs + times.stopMs + times.startMs + times.heartbeatMs;
  const ideal = idealMs(
    computeBatches(inv).map((b) => b.nodes),
    computeParallel(inv),
    () => chain,
  );

  const parent = (await h.fetchHistory()).events ?? [];
  const sizes = payloads(parent);
  const childIds = parent
    .map((e) => e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId)
    .filter((x): x is string => !!x);
  let largestChild = { id: '', events: 0 };
  const batchEvents = async (id: string) => (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
  let largestChildEvents: Awaited<ReturnType<typeof batchEvents>> = [];
  for (const id of childIds) {
    const ev = await batchEvents(id);
    if (ev.length > largestChild.events) {
      largestChild = { id, events: ev.length };
      largestChildEvents = ev;
    }
    for (const [k, v] of payloads(ev)) sizes.set(`child ${k}`, Math.max(sizes.get(`child ${k}`) ?? 0, v));
  }
  const progressBytes = Buffer.byteLength(JSON.stringify(progress));
  const ranked: PayloadMax[] = [...sizes.entries()]
    .map(([where, bytes]) => ({ where, bytes }))
    .sort((a, b) => b.bytes - a.bytes);
  const input = sizes.get('workflowExecutionStartedEventAttributes.input') ?? 0;
  const largestChildInput = sizes.get('startChildWorkflowExecutionInitiatedEventAttributes.input') ?? 0;
  const row = {
    computes: n,
    status: result.status,
    labUpS: labUpMs / 1000,
    wallS: wallMs / 1000,
    computePhaseS: computePhaseMs / 1000,
    batchSumS: batchWallMs / 1000,
    idealS: ideal / 1000,
    ratio: batchWallMs / ideal,
    batches: batches.length,
    parentEvents: parent.length,
    children: childIds.length,
    largestChild,
    inputBytes: input,
    largestChildInputBytes: largestChildInput,
    progressBytes,
    largestPayloads: ranked.slice(0, 5),
    workerPeakRssMiB: (last?.hwm ?? 0) / 2 ** 20,
    workerCpuS: last?.cpu ?? 0,
    sshPeak: peakConn,
    sshAtEnd: connAtEnd,
    load: `${loadBefore} → ${loadAfter}`,
    // The lab's nodes share this machine: every process a remote command forks, and every CPU
    // second anything spends, is the fleet's cost here (on real computes each node has its own).
    forksPerS: (after.forks - before.forks) / (wallMs / 1000),
    machineBusyCores: (after.busyS - before.busyS) / (wallMs / 1000),
  };
  console.log(JSON.stringify(row, null, 2));
  console.log(`${largestChild.id}:\n${renderBatchProfile(batchProfile(largestChildEvents))}`);
  console.log(
    `| ${n} | ${batches.length} | ${row.wallS.toFixed(0)} | ${row.batchSumS.toFixed(0)} | ${row.idealS.toFixed(0)} | ${row.ratio.toFixed(2)} | ${row.parentEvents} | ${largestChild.events} | ${kib(input)} | ${kib(progressBytes)} | ${kib(ranked[0]?.bytes ?? 0)} (${ranked[0]?.where}) | ${row.workerPeakRssMiB.toFixed(0)} MiB | ${row.workerCpuS.toFixed(0)} | ${peakConn} | ${row.load} |`,
  );
  await stopWorkerProcess(workerDir);
  await labDown(stateDir);
  if (!process.env.NOVA_UPGRADE_KEEP_BENCH_STATE) rmSync(stateDir, { recursive: true, force: true });
  return row;
}

async function main() {
  mkdirSync(root, { recursive: true });
  const temporalDir = join(root, 'temporal');
  const server = await startDevServer({
    stateDir: temporalDir,
    port: await findFreePort(),
    uiPort: await findFreePort(),
    headless: true,
  });
  const bundlePath =
    existsSync(join(root, 'workflow-bundle.js')) && args.includes('--reuse-bundle')
      ? join(root, 'workflow-bundle.js')
      : await bundle();
  const client = new Client({
    connection: await Connection.connect({ address: server.address }),
    namespace: server.namespace,
  });
  console.log(
    `fleet bench: batch ${batchSize}, ${parallel} at once, times install ${installMs} stop ${stopMs} start ${startMs} heartbeat ${heartbeatMs} ms; load ${load()}`,
  );
  console.log(
    '| computes | batches | wall s | batches s | ideal s | batches/ideal | parent events | largest child events | workflow input | progress answer | largest payload | worker peak RSS | worker CPU s | SSH conns (peak) | load avg before → after |',
  );
  try {
    for (const n of counts) await one(client, server.address, server.namespace, bundlePath, n);
  } finally {
    await client.connection.close();
    if (!args.includes('--keep-server')) await stopDevServer(temporalDir);
  }
}

if (require.main === module)
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
