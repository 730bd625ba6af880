// bench/fleet, plan only: the shape and payload sizes of an upgrade of N computes in C cells
// with today's batch policy, without running it. Temporal refuses payloads over 2 MiB and
// warns from 512 KiB; the goal is 256 KiB for any payload.
// Usage: npx tsx bench/fleet-plan.ts [computes=10000] [cells=100] [batchSize=50] [parallel=50]
import { validateInventory } from '../inventory/load';
import { computeBatches, inventoryForBatch } from '../common/topology';
import { planUpgrade } from '../workflows/runbook';
import type { BatchAggregate, FailedNodeRecord } from '../common/messages';

const [computes = 10_000, cells = 100, batchSize = 50, parallel = 50] = process.argv.slice(2).map(Number);
const nodes = [
  { name: 'ctl', address: '10.0.0.1', roles: ['controller'] },
  ...Array.from({ length: 4 }, (_, i) => ({
    name: `api${i}`,
    address: `10.0.1.${i + 1}`,
    roles: i < 3 ? ['api', 'lb'] : ['api'],
    ...(i < 3 ? { lb: { socket: { via: 'ssh' } } } : {}),
  })),
  ...Array.from({ length: computes }, (_, i) => ({
    name: `cmp${i}`,
    address: `10.${1 + Math.floor(i / 62_500)}.${Math.floor(i / 250) % 250}.${(i % 250) + 1}`,
    roles: ['compute'],
    cell: `cell${(i % cells) + 1}`,
  })),
];
const t0 = process.hrtime.bigint();
const inv = validateInventory({
  cloud: 'bench',
  release: { from: '30.0.0', to: '31.0.0' },
  ssh: { privateKeyPath: '/k', knownHostsPath: '/kh' },
  vip: { url: 'http://10.0.9.9:8282' },
  compute: { batchSize, parallel, canary: 1, groupBy: 'cell', maxFailedNodes: '1%' },
  nodes,
});
const validatedMs = Number(process.hrtime.bigint() - t0) / 1e6;
const plan = planUpgrade(inv);
const batches = computeBatches(inv);
const kib = (s: string) => `${(Buffer.byteLength(s) / 1024).toFixed(1)} KiB`;
const input = JSON.stringify({ inventory: inv, autoApprove: [], startedBy: 'bench' });
const largest = batches.reduce((a, b) => (b.nodes.length > a.nodes.length ? b : a));
const childInput = JSON.stringify({
  inventory: inventoryForBatch(inv, largest.nodes),
  batch: largest,
  batches: batches.length,
  key: 'nova-upgrade-bench/01234567/compute-batch:1/r0',
  memo: Object.fromEntries(
    largest.nodes.map((n) => [
      n,
      { before: { mainPid: 123456, startedMonotonic: 12345678901 }, stoppedAt: new Date().toISOString() },
    ]),
  ),
});
// The progress answer once every batch ran, 1% of the nodes failed and were skipped.
const aggregates: BatchAggregate[] = batches.map((b) => ({
  index: b.index,
  nodes: b.nodes.length,
  done: b.nodes.length,
  failed: 0,
  skipped: 0,
  status: 'done',
  startedAt: new Date().toISOString(),
  endedAt: new Date().toISOString(),
  slowestNodeMs: 123_456,
  totalNodeMs: 6_172_800,
}));
const failed: FailedNodeRecord[] = Array.from({ length: Math.floor(computes / 100) }, (_, i) => ({
  node: `cmp${i * 100}`,
  host: `cmp${i * 100}`,
  batch: 1 + Math.floor(i / 2),
  stage: `install nova 31.0.0 on cmp${i * 100}`,
  error: 'x'.repeat(200),
  status: 'skipped',
  reason: 'y'.repeat(40),
  by: 'alice',
}));
const progress = JSON.stringify({
  steps: plan.map((p) => ({
    id: p.id,
    phase: p.phase,
    title: p.title,
    node: p.node,
    status: 'succeeded',
    attempts: 1,
    operatorRetries: 0,
    summary: 'x'.repeat(120),
  })),
  compute: { batches: aggregates, failedNodes: failed },
});
const hupSteps = plan.filter((s) => s.id.startsWith('hup')).length;
console.log(
  `fleet: ${computes} computes in ${cells} cells, batch size ${batchSize}, ${parallel} at once (inventory validated in ${validatedMs.toFixed(0)} ms)`,
);
console.log(`parent steps: ${plan.length} (of which SIGHUP: ${hupSteps}); compute batches: ${batches.length}`);
console.log(
  `workflow input: ${kib(input)}; largest batch child's input (${largest.nodes.length} nodes, with memo): ${kib(childInput)}; progress answer: ${kib(progress)}`,
);
