// The batch policy in the inventory: a canary batch, batches by count or percent, grouping by
// cell so no batch mixes two, the failure budget; and bad policy input refused by field.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { InventoryError, validateInventory } from '../inventory/load';
import { computeBatches, failureBudget } from '../common/topology';
import { compactInventory, expandInventory, stepBy } from '../common/nodeRuns';

type Raw = { nodes: Record<string, unknown>[]; compute?: Record<string, unknown> } & Record<string, unknown>;

/** The seed's two nodes (left out of the batches) and `n` compute-only nodes, cells cell1/cell2 alternating in runs. */
function fleet(
  n: number,
  compute: Record<string, unknown>,
  cellOf: (i: number) => string = (i) => (i <= n / 2 ? 'cell1' : 'cell2'),
): Raw {
  const raw = parse(readFileSync('examples/seed-two-node.yaml', 'utf8')) as Raw;
  for (let i = 1; i <= n; i++)
    raw.nodes.push({ name: `c${i}`, address: `127.0.42.${i}`, roles: ['compute'], cell: cellOf(i) });
  raw.compute = { exclude: ['controller', 'apicomp'], ...compute };
  return raw;
}

const sizes = (raw: Raw) => computeBatches(validateInventory(raw)).map((b) => b.nodes.length);

function problemsOf(raw: Raw): string[] {
  try {
    validateInventory(raw);
  } catch (err) {
    if (err instanceof InventoryError) return err.problems;
    throw err;
  }
  return [];
}

describe('batch policy', () => {
  it('puts a canary batch first, then batches by count or percent', () => {
    expect(sizes(fleet(20, { batchSize: 5 }))).toEqual([5, 5, 5, 5]);
    expect(sizes(fleet(20, { batchSize: 5, canary: 1 }))).toEqual([1, 5, 5, 5, 4]);
    expect(sizes(fleet(20, { batchSize: '25%', canary: 2 }))).toEqual([2, 5, 5, 5, 3]);
    // A percent too small for one node still moves one at a time.
    expect(sizes(fleet(20, { batchSize: '1%' }))).toEqual(Array.from({ length: 20 }, () => 1));
    const b = computeBatches(validateInventory(fleet(4, { batchSize: 2, canary: 1 })));
    expect(b[0]).toEqual({ index: 1, nodes: ['c1'], canary: true });
    expect(b[1]).toEqual({ index: 2, nodes: ['c2', 'c3'] });
  });

  it('never mixes two cells in a batch', () => {
    // c1..c5 in cell1 and c6..c10 in cell2, interleaved in the inventory's order.
    const raw = fleet(10, { batchSize: 4, groupBy: 'cell' }, (i) => (i % 2 ? 'cell1' : 'cell2'));
    const inv = validateInventory(raw);
    const batches = computeBatches(inv);
    for (const batch of batches) {
      const cells = new Set(batch.nodes.map((n) => inv.nodes.find((x) => x.name === n)!.cell));
      expect(cells.size, batch.nodes.join(',')).toBe(1);
    }
    expect(batches.map((x) => x.nodes)).toEqual([['c1', 'c3', 'c5', 'c7'], ['c9'], ['c2', 'c4', 'c6', 'c8'], ['c10']]);
    // Without groupBy the same inventory mixes them.
    delete raw.compute!.groupBy;
    expect(computeBatches(validateInventory(raw))[0]!.nodes).toEqual(['c1', 'c2', 'c3', 'c4']);
  });

  it('turns the failure budget into nodes', () => {
    expect(failureBudget(validateInventory(fleet(200, { maxFailedNodes: '2%' })))).toBe(4);
    expect(failureBudget(validateInventory(fleet(200, { maxFailedNodes: 0 })))).toBe(0);
    expect(failureBudget(validateInventory(fleet(200, {})))).toBeUndefined();
  });

  it('refuses bad policy input with a sentence naming the field', () => {
    const pct = 'must be a whole number of nodes or a percent from 1% to 100% (e.g. "10%")';
    expect(problemsOf(fleet(4, { batchSize: '150%' }))).toEqual([`compute.batchSize: ${pct}`]);
    expect(problemsOf(fleet(4, { batchSize: 0 }))).toEqual(['compute.batchSize: must be at least 1 node']);
    expect(problemsOf(fleet(4, { batchSize: true }))).toEqual([
      'compute.batchSize: must be a whole number of nodes (e.g. 10) or a percent of the computes (e.g. "10%")',
    ]);
    expect(problemsOf(fleet(4, { maxFailedNodes: 'some' }))).toEqual([`compute.maxFailedNodes: ${pct}`]);
    expect(problemsOf(fleet(4, { groupBy: 'rack' }))).toEqual([
      'compute.groupBy: Invalid option: expected one of "cell"|"az"|"aggregate"',
    ]);
    expect(problemsOf(fleet(4, { canary: 0 }))).toEqual(['compute.canary: Too small: expected number to be >=1']);
  });
});

describe('a fleet kept compact in the workflow input', () => {
  it('steps names and addresses as they are numbered: zero padding, IPv4 carry, no number', () => {
    expect(stepBy('cmp009', 1)).toBe('cmp010');
    expect(stepBy('cmp9', 1)).toBe('cmp10');
    expect(stepBy('cmp099.cell3.example', 2)).toBe('cmp101.cell3.example');
    expect(stepBy('rack2-cmp099', 2, 1)).toBe('rack2-cmp101');
    expect(stepBy('127.0.42.255', 1)).toBe('127.0.43.0');
    expect(stepBy('127.0.42.1', 300)).toBe('127.0.43.45');
    expect(stepBy('255.255.255.255', 1)).toBeUndefined();
    expect(stepBy('controller', 1)).toBeUndefined();
  });

  it('sends runs of nodes that differ only by their number, and expands them to the same nodes', () => {
    // 600 computes over three octets, three cells of 200 in runs, one with its own port, one
    // whose novaHost does not follow its name, and an sshHost alias that steps too.
    const raw = fleet(600, {}, (i) => `cell${Math.ceil(i / 200)}`);
    for (const [i, n] of raw.nodes.entries()) {
      if (i < 2) continue;
      const k = i - 1;
      n.name = `cmp${String(k).padStart(3, '0')}`;
      n.address = `127.0.${42 + Math.floor((k - 1) / 250)}.${((k - 1) % 250) + 1}`;
      n.sshHost = `cmp${String(k).padStart(3, '0')}.lab`;
    }
    raw.nodes[100]!.sshPort = 2200;
    raw.nodes[300]!.novaHost = 'odd-one';
    const inv = validateInventory(raw);
    const compact = compactInventory(inv);
    expect(expandInventory(compact)).toEqual(inv);
    expect(JSON.stringify(expandInventory(compact).nodes)).toBe(JSON.stringify(inv.nodes));
    const runs = compact.nodeRuns.map((r) => [r.first.name, r.count, r.steps]);
    const S = { name: 0, address: 0, novaHost: 0, sshHost: 0 };
    expect(runs).toEqual([
      ['controller', 1, undefined],
      ['apicomp', 1, undefined],
      ['cmp001', 98, S],
      ['cmp099', 1, undefined], // its own port
      ['cmp100', 101, S], // to cell1's end
      ['cmp201', 50, S], // 127.0.42.250 is the last of its address run
      ['cmp251', 48, S],
      ['cmp299', 1, undefined], // novaHost odd-one
      ['cmp300', 101, S], // to cell2's end at cmp400
      ['cmp401', 100, S],
      ['cmp501', 100, S],
    ]);
    // An inventory as every run before this change sent it is used as it is.
    expect(expandInventory(inv)).toBe(inv);
  });

  it("keeps a run whose nodes name themselves in another field (the scale lab's per-node config path)", () => {
    const raw = fleet(40, {});
    for (const n of raw.nodes.slice(2)) n.configFiles = [`/srv/lab/nodes/${String(n.name)}/nova-cpu.conf`];
    raw.nodes[20]!.configFiles = ['/etc/nova/nova-cpu.conf'];
    const inv = validateInventory(raw);
    const compact = compactInventory(inv);
    expect(compact.nodeRuns.map((r) => [r.first.name, r.count])).toEqual([
      ['controller', 1],
      ['apicomp', 1],
      ['c1', 18],
      ['c19', 1], // its config path is not its own
      ['c20', 1], // the last of cell1
      ['c21', 20],
    ]);
    expect(JSON.stringify(expandInventory(compact).nodes)).toBe(JSON.stringify(inv.nodes));
    expect(expandInventory(compact).nodes[30]!.configFiles).toEqual(['/srv/lab/nodes/c29/nova-cpu.conf']);
  });

  it('keeps the workflow input of 10,000 computes in 100 cells under 256 KiB', () => {
    const raw = fleet(10_000, {}, (i) => `cell${Math.ceil(i / 100)}`);
    for (const [i, n] of raw.nodes.entries())
      if (i >= 2) n.address = `127.3.${Math.floor((i - 2) / 250)}.${((i - 2) % 250) + 1}`;
    const inv = validateInventory(raw);
    const full = Buffer.byteLength(JSON.stringify({ inventory: inv, autoApprove: [], startedBy: 'x' }));
    const input = Buffer.byteLength(
      JSON.stringify({ inventory: compactInventory(inv), autoApprove: [], startedBy: 'x' }),
    );
    expect(full).toBeGreaterThan(2 * 1024 * 1024);
    expect(input).toBeLessThan(256 * 1024);
    expect(expandInventory(compactInventory(inv)).nodes).toEqual(inv.nodes);
  });
});
