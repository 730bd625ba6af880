// How the upgrade's shape grows with the fleet: steps in the parent workflow, compute batches
// (each a child workflow), and the size of the payloads Temporal must carry. Temporal refuses
// payloads over 2 MiB and warns from 512 KiB, so these must stay well below for real fleets.
// Usage: npx tsx bench/plan-scale.ts [computes=500] [apiNodes=4] [lbNodes=3] [batchSize=10]
import { validateInventory } from '../inventory/load';
import { computeBatches } from '../common/topology';
import { plannedSteps as planUpgrade } from '../workflows/runbook';

const [computes = 500, apis = 4, lbs = 3, batchSize = 10] = process.argv.slice(2).map(Number);
const nodes = [
  { name: 'ctl', address: '10.0.0.1', roles: ['controller'] },
  ...Array.from({ length: apis }, (_, i) => ({
    name: `api${i}`,
    address: `10.0.1.${i + 1}`,
    roles: i < lbs ? ['api', 'lb'] : ['api'],
    ...(i < lbs ? { lb: { socket: { via: 'ssh' } } } : {}),
  })),
  ...Array.from({ length: computes }, (_, i) => ({
    name: `cmp${i}`,
    address: `10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    roles: ['compute'],
  })),
];
const started = process.hrtime.bigint();
const inv = validateInventory({
  cloud: 'bench',
  release: { from: '30.0.0', to: '31.0.0' },
  ssh: { privateKeyPath: '/k', knownHostsPath: '/kh' },
  vip: { url: 'http://10.0.9.9:8282' },
  compute: { batchSize },
  nodes,
});
const validatedMs = Number(process.hrtime.bigint() - started) / 1e6;
const plan = planUpgrade(inv);
const batches = computeBatches(inv);
const parentSteps = plan.length;
const input = JSON.stringify({ inventory: inv, autoApprove: [], startedBy: 'bench' });
const childInput = JSON.stringify({
  inventory: { ...inv, nodes: inv.nodes.filter((n) => batches[0]!.nodes.includes(n.name) || n.name === 'ctl') },
  batch: batches[0],
  batches: batches.length,
  key: 'k',
});
const progress = JSON.stringify(
  plan.map((p) => ({
    id: p.id,
    phase: p.phase,
    title: p.title,
    node: p.node,
    status: 'succeeded',
    attempts: 1,
    operatorRetries: 0,
    summary: 'x'.repeat(80),
  })),
);
console.log(`fleet: ${computes} computes, ${apis} API nodes, ${lbs} LB nodes, batch size ${batchSize}`);
console.log(`inventory validated in ${validatedMs.toFixed(1)} ms`);
console.log(`parent workflow steps: ${parentSteps}; compute batches (child workflows): ${batches.length}`);
console.log(
  `workflow input: ${(input.length / 1024).toFixed(1)} KiB; one batch's input: ${(childInput.length / 1024).toFixed(1)} KiB; progress query answer: ~${(progress.length / 1024).toFixed(1)} KiB`,
);
