// bench/fleet, plan only: the shape and payload sizes of an upgrade of N computes in C cells
// with today's batch policy, without running it. Temporal refuses payloads over 2 MiB and
// warns from 512 KiB; the goal is 256 KiB for any payload.
// Usage: npx tsx bench/fleet-plan.ts [computes=10000] [cells=100] [batchSize=50] [parallel=50] [--interleaved]
// A cell's computes are numbered together (cmp0 … cmp99 in cell1), as fleets are named; with
// --interleaved they go round-robin (cmp0 in cell1, cmp1 in cell2, …), which leaves the compact
// workflow input nothing to compact (each node is its own run).
import { validateInventory } from '../inventory/load';
import { computeBatches, inventoryForBatch } from '../common/topology';
import { planUpgrade } from '../workflows/runbook';
import type { BatchAggregate, FailedNodeRecord, Progress } from '../common/messages';
import { inputInventory } from '../common/nodeRuns';
import { progressAnswer } from '../common/progressAnswer';
import { sshTargetFor } from '../common/sshTarget';
import type { NodeAccessChunkResult, NodeAccessResult } from '../activities/ssh/preflight';
import { NODE_ACCESS_CHUNK } from '../workflows/runbook/beforeUpgrade';

const args = process.argv.slice(2);
const interleaved = args.includes('--interleaved');
const [computes = 10_000, cells = 100, batchSize = 50, parallel = 50] = args
  .filter((a) => !a.startsWith('--'))
  .map(Number);
const perCell = Math.ceil(computes / cells);
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
    cell: `cell${interleaved ? (i % cells) + 1 : Math.floor(i / perCell) + 1}`,
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
const fullInput = JSON.stringify({ inventory: inv, autoApprove: [], startedBy: 'bench' });
// As the CLI sends it (client/upgrades.ts): compact when that is smaller and expands back.
const sent = inputInventory(inv);
const runs = 'nodeRuns' in sent ? `${sent.nodeRuns.length} node runs` : 'in full: no runs to compact';
const input = JSON.stringify({ inventory: sent, autoApprove: [], startedBy: 'bench' });
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
const state: Progress = {
  workflowId: 'nova-upgrade-bench',
  cloud: 'bench',
  from: '30.0.0',
  to: '31.0.0',
  status: 'completed',
  approvals: [],
  warnings: [],
  abortRequested: false,
  steps: plan.map((p) => ({
    id: p.id,
    phase: p.phase,
    title: p.title,
    ...(p.node ? { node: p.node } : {}),
    status: 'succeeded',
    attempts: 1,
    operatorRetries: 0,
    summary: 'x'.repeat(120),
  })),
  compute: {
    nodesDone: computes,
    nodesTotal: computes,
    batchesDone: batches.length,
    batchesTotal: batches.length,
    batches: aggregates,
    failedNodes: failed,
  },
};
const wholeState = JSON.stringify(state);
const answer = progressAnswer(state);
const progress = JSON.stringify(answer);
// The workflow's result carries the steps as the answer bounds them (upgrade.ts result()).
const result = JSON.stringify({ status: 'completed', steps: answer.steps, batchSteps: answer.batchSteps, done: [] });
// The node-access preflight. Before node-access-in-chunks: one activity, every node's target in
// its input, and in its result each node's route, login and summary beside the commands.
const access = (n: (typeof inv.nodes)[number]) => ({ target: sshTargetFor(inv, n), sudo: true, timeoutMs: 120_000 });
const record = (node: string, command: string) => ({ node, command, exitCode: 0, durationMs: 35 });
const oneResult = (n: (typeof inv.nodes)[number]): Omit<NodeAccessResult, 'commands'> => ({
  node: n.name,
  route: `root@${n.address}:22`,
  loginUser: 'root',
  sudo: 'works without a password',
  summary: `${n.name}: logged in as root via root@${n.address}:22; sudo works without a password`,
});
const oldInput = JSON.stringify({ nodes: inv.nodes.map(access) });
const oldResult = JSON.stringify({
  summary: 'logged in to all',
  results: inv.nodes.map(oneResult),
  commands: inv.nodes.flatMap((n) => [record(n.name, 'id -un'), record(n.name, 'sudo -n true')]),
});
// Since: calls of NODE_ACCESS_CHUNK nodes; the result counts and the refusals. Sized with every
// node of the chunk refused (each with a 300-character sentence), its worst case.
const chunk = inv.nodes.slice(0, NODE_ACCESS_CHUNK);
const chunkInput = JSON.stringify({ nodes: chunk.map(access) });
const chunkResult: NodeAccessChunkResult = {
  summary: `logged in to 0 of ${chunk.length} node(s) (${chunk[0]!.name} … ${chunk.at(-1)!.name}) as root; sudo works without a password on the 0 that use it; ${chunk.length} refused`,
  checked: 0,
  sudo: 0,
  loginUsers: ['root'],
  refused: chunk.map((n) => ({ node: n.name, error: 'z'.repeat(300), type: 'SshSudoNeedsPassword' })),
  commands: [record(`${chunk.length} node(s) of ${chunk[0]!.name} … ${chunk.at(-1)!.name}`, 'id -un')],
};
const hupSteps = plan.filter((s) => s.id.startsWith('hup')).length;
console.log(
  `fleet: ${computes} computes in ${cells} cells, batch size ${batchSize}, ${parallel} at once (inventory validated in ${validatedMs.toFixed(0)} ms)`,
);
console.log(`parent steps: ${plan.length} (of which SIGHUP: ${hupSteps}); compute batches: ${batches.length}`);
console.log(
  `workflow input: ${kib(input)} (${runs}; in full ${kib(fullInput)}); largest batch child's input (${largest.nodes.length} nodes, with memo): ${kib(childInput)}`,
);
console.log(
  `progress answer: ${kib(progress)} (the workflow's whole state ${kib(wholeState)}); workflow result: ${kib(result)}`,
);
console.log(
  `node-access preflight: ${Math.ceil(inv.nodes.length / NODE_ACCESS_CHUNK)} calls, each input ≤ ${kib(chunkInput)}, result ≤ ${kib(JSON.stringify(chunkResult))} (every node refused); before node-access-in-chunks one call: input ${kib(oldInput)}, result ${kib(oldResult)}`,
);
