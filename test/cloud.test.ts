// What a real cloud has that the lab's defaults hid (issue 11), each made to happen on the
// stand-in lab on 127.0.32.x over real SSH: a cell nova maps and the inventory lacks, a catalog
// with two regions, placement's own code, and a metadata API behind its own HAProxy backend.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createCellActivities, parseCellList } from '../activities/nova/cells';
import { SshPool } from '../activities/ssh/pool';
import { cmd, targetOf } from '../common/topology';
import { validateInventory } from '../inventory/load';
import type { Inventory } from '../inventory/schema';
import { labDown, labUp, runOnNode, type LabInfo } from '../lab/lab';
import { addLabCell } from '../lab/node/cloud';
import { activityEnv, failureOf } from './helpers/activityEnv';

let dir: string;
let lab: LabInfo;
let inv: Inventory;
const pool = new SshPool();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nova-cloud-test-'));
  lab = await labUp({ stateDir: join(dir, 'lab'), subnet: '127.0.32', apiMercySeconds: 2 });
  inv = validateInventory(parse(readFileSync(lab.inventoryPath, 'utf8')), lab.inventoryPath);
}, 120_000);

afterAll(async () => {
  await pool.close();
  if (lab) await labDown(lab.stateDir);
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe("nova's cells against the inventory's", () => {
  it("reads nova's cell list as nova-manage prints it", async () => {
    const out = await runOnNode(lab.nodes[0]!, 'nova-manage', ['cell_v2', 'list_cells']);
    const cells = parseCellList(out.stdout);
    expect(cells?.map((c) => [c.name, c.disabled])).toEqual([
      ['cell0', false],
      ['cell1', false],
    ]);
    expect(cells?.[0]?.uuid).toBe('00000000-0000-0000-0000-000000000000');
    // nova masks the passwords unless --verbose.
    expect(out.stdout).toContain('rabbit://stackrabbit:****@');
    const r = await activityEnv().run(createCellActivities({ runner: pool }).checkCells, {
      target: targetOf(inv, inv.controller),
      command: cmd(inv, 'cellList'),
      cells: inv.cells.map((c) => c.name),
    });
    expect(r.summary).toBe("nova's cells are the inventory's: cell0, cell1");
  });

  it('refuses, naming it, a cell that nova has and the inventory lacks', async () => {
    addLabCell(lab.stateDir, 'cell2', lab.options.fromVersion, { populate_user_id: 9 });
    const err = await failureOf(
      activityEnv().run(createCellActivities({ runner: pool }).checkCells, {
        target: targetOf(inv, inv.controller),
        command: cmd(inv, 'cellList'),
        cells: inv.cells.map((c) => c.name),
      }),
    );
    expect(err.type).toBe('NovaCellsDiffer');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toMatch(
      /^nova has cell "cell2" \([0-9a-f-]{36}\) that the inventory's cells do not list: add it to cells with its config file, or its database is never synced nor migrated \(`nova-manage cell_v2 list_cells` on controller\)$/,
    );
  });
});
