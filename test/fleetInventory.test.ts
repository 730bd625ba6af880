// The batch policy in the inventory: a canary batch, batches by count or percent, grouping by
// cell so no batch mixes two, the failure budget; and bad policy input refused by field.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { InventoryError, validateInventory } from '../inventory/load';
import { computeBatches, failureBudget } from '../common/topology';

type Raw = { nodes: Record<string, unknown>[]; compute?: Record<string, unknown> } & Record<string, unknown>;

/** The seed's two nodes (left out of the batches) and `n` compute-only nodes, cells cell1/cell2 alternating in runs. */
function fleet(
  n: number,
  compute: Record<string, unknown>,
  cellOf = (i: number) => (i <= n / 2 ? 'cell1' : 'cell2'),
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
