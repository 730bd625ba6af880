// Several cells on real OpenStack: the real-nova lab with cell2 (`lab up --nova real --cells
// 2`: cell2's own database and vhost, nova_cell2.conf and its conductor on the controller, and
// a node cell2-compute1 whose nova-compute is in cell2), upgraded 33.0.2 → 34.0.0 from the CLI
// through a real worker with the default templates (only installCode is the lab's). The
// tool's db sync, service-version read and online data migrations run in every cell.
//
// 127.0.90. About 30 min on a 2-core machine, so only with NOVA_UPGRADE_REAL_CELL2=1. tempest is
// off in this run (the inventory's tempest.enabled: false): test/realLab.test.ts runs it, and its
// four runs cost ≈ 8 min here without telling anything about cells.
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Progress, UpgradeResult } from '../common/messages';
import { validateInventory } from '../inventory/load';
import type { InventoryInput } from '../inventory/schema';
import { labDown, labUp, type LabInfo } from '../lab/lab';
import { labInventory } from '../lab/labInventory';
import { labPeakRss } from '../lab/rss';
import { cellConductorUnit, NOVA_UNITS, nodeLayout } from '../lab/node/layout';
import { readUnitFile } from '../lab/node/units';
import { mariadbQuery } from '../lab/real/backing';
import { realFiles } from '../lab/real/configs';
import { backingDirs, runNodeBin } from '../lab/real/realLab';
import { planTopology } from '../lab/topology';
import { sharedTemporal, startSharedWorkerProcess } from './temporalEnv';
import { runCli, type CliRun } from './helpers/cli';
import {
  computeServiceList,
  expectLiveServiceRowsAt,
  runRecords,
  serviceVersion,
  tearDownRealLab,
  venvsMappedBy,
} from './helpers/realLab';

const REAL = process.env.NOVA_UPGRADE_REAL_CELL2 === '1';
const SUBNET = '127.0.90';
const FROM = '33.0.2';
const TO = '34.0.0';
const dir = mkdtempSync(join(tmpdir(), 'real-cells-'));
// RabbitMQ runs as the rabbitmq user, which must traverse the lab's directories.
chmodSync(dir, 0o755);
const stateDir = join(dir, 'lab');
const taskQueue = `real-cells-${randomUUID()}`;
let address: string;
let lab: LabInfo;
let labUpMs = 0;

function cli(...args: string[]): Promise<CliRun> {
  return runCli([...args, '--address', address, '--task-queue', taskQueue], { NOVA_UPGRADE_OPERATOR: 'test-operator' });
}

// Pure, always run: the inventory a two-cell real lab writes names cell2 for every default
// template that works per cell, and its conductor and compute for the restarts.
describe('the real lab inventory with --cells 2', () => {
  it('lists cell0, cell1 and cell2 with their configs, the cell2 conductor and the cell2 compute', () => {
    const topology = planTopology({
      subnet: SUBNET,
      apiNodes: 2,
      computeOnlyNodes: 0,
      lbNodes: 1,
      sshPort: 2222,
      cells: 2,
    });
    expect(topology.nodes.map((n) => `${n.name} ${n.address} ${n.roles.join(',')} ${n.cell ?? '-'}`)).toEqual([
      `controller ${SUBNET}.2 controller,api,compute,lb -`,
      `apicomp ${SUBNET}.3 api,compute -`,
      `cell2-compute1 ${SUBNET}.4 compute cell2`,
    ]);
    const inv = labInventory({
      stateDir: '/tmp/lab',
      fromVersion: FROM,
      toVersion: TO,
      sshPort: 2222,
      nova: 'real',
      cells: 2,
      ...topology,
    });
    validateInventory(inv, 'two-cell lab inventory');
    const ctl = realFiles('/tmp/lab/nodes/controller');
    expect(inv.cells).toEqual([
      { name: 'cell0', configFile: ctl.novaConf },
      { name: 'cell1', configFile: ctl.cellConf('cell1') },
      { name: 'cell2', configFile: ctl.cellConf('cell2') },
    ]);
    const controller = inv.nodes.find((n) => n.name === 'controller')!;
    expect(controller.services?.map((s) => `${s.unit} ${s.kind}`)).toContain(`${cellConductorUnit('cell2')} conductor`);
    expect(controller.configFiles).toContain(ctl.cellConf('cell2'));
    const c2 = inv.nodes.find((n) => n.name === 'cell2-compute1')!;
    expect(c2.services).toEqual([{ unit: NOVA_UNITS.compute, kind: 'compute' }]);
    expect(c2.configFiles).toEqual([realFiles('/tmp/lab/nodes/cell2-compute1').cpuConf]);
    // One cell is still the default, and the stand-ins refuse a second.
    const one = labInventory({
      stateDir: '/tmp/lab',
      fromVersion: FROM,
      toVersion: TO,
      sshPort: 2222,
      nova: 'real',
      ...planTopology({ subnet: SUBNET, apiNodes: 2, computeOnlyNodes: 0, lbNodes: 1, sshPort: 2222 }),
    });
    expect(one.cells?.map((c) => c.name)).toEqual(['cell0', 'cell1']);
  });

  it('refuses a second cell on the stand-in lab, and a third cell, naming the option', async () => {
    await expect(labUp({ stateDir: join(dir, 'refused'), subnet: SUBNET, cells: 2 })).rejects.toThrow(
      /lab cells 2 needs the real-nova lab/,
    );
    await expect(labUp({ stateDir: join(dir, 'refused'), subnet: SUBNET, nova: 'real', cells: 3 })).rejects.toThrow(
      /lab cells must be 1 \(cell1\) or 2/,
    );
    // Refused before anything was written or started.
    expect(existsSync(join(dir, 'refused'))).toBe(false);
  });
});

beforeAll(async () => {
  if (!REAL) return;
  const t = sharedTemporal();
  address = t.address;
  await labDown(stateDir);
  const t0 = Date.now();
  lab = await labUp({ stateDir, subnet: SUBNET, nova: 'real', apiMercySeconds: 10, cells: 2 });
  labUpMs = Date.now() - t0;
  await startSharedWorkerProcess(dir, taskQueue);
}, 1_800_000);

afterAll(async () => {
  if (!REAL) return;
  await tearDownRealLab(dir, stateDir);
}, 120_000);

describe.runIf(REAL)('the real-nova lab with cell2', () => {
  it('upgrades 33 → 34 in cell0, cell1 and cell2 with the default templates', async () => {
    const controller = lab.nodes.find((n) => n.name === 'controller')!;
    const cell2 = lab.nodes.find((n) => n.name === 'cell2-compute1')!;
    const before = await serviceVersion(FROM);
    const after = await serviceVersion(TO);
    expect(after).toBeGreaterThan(before);

    // nova itself maps three cells and the cell2 compute to cell2.
    const cells = await runNodeBin(controller, 'nova-manage', ['cell_v2', 'list_cells']);
    for (const c of ['cell0', 'cell1', 'cell2']) expect(cells).toMatch(new RegExp(`\\|\\s*${c}\\s*\\|`));
    const hosts = await runNodeBin(controller, 'nova-manage', ['cell_v2', 'list_hosts']);
    expect(hosts).toMatch(/\|\s*cell2\s*\|[^\n]*\|\s*cell2-compute1\s*\|/);
    // Before: the cell2 rows are at 33.0.2's service version.
    const c2rows = await mariadbQuery(
      backingDirs(stateDir).mariadb,
      'SELECT host, `binary`, version FROM nova_cell2.services WHERE deleted = 0 ORDER BY host, `binary`',
    );
    expect(c2rows).toEqual([
      ['cell2-compute1', 'nova-compute', String(before)],
      ['controller', 'nova-conductor', String(before)],
    ]);

    // The test's own inventory: the lab's, with tempest off (see the header).
    const inv = parse(readFileSync(lab.inventoryPath, 'utf8')) as InventoryInput;
    inv.tempest = { ...inv.tempest!, enabled: false, repeatDuringApi: false };
    const invPath = join(dir, 'inventory-no-tempest.yaml');
    validateInventory(inv, 'cells test inventory');
    writeFileSync(invPath, stringify(inv));

    const peak = labPeakRss(stateDir, 2000);
    const t0 = Date.now();
    const started = await cli('start', '-i', invPath, '--auto-approve', 'all');
    expect(started.code, started.stderr).toBe(0);
    const id = 'nova-upgrade-lab';
    let view: { running: boolean; progress?: Progress; result?: UpgradeResult };
    for (;;) {
      const s = await cli('status', id, '--json');
      expect(s.code, s.stderr).toBe(0);
      view = JSON.parse(s.stdout) as typeof view;
      if (!view.running) break;
      // Any hold on real nova is a finding: show it instead of waiting out the timeout.
      expect(view.progress?.status, JSON.stringify(view.progress?.pendingDecision, null, 2)).not.toBe('held');
      await new Promise((r) => setTimeout(r, 3000));
    }
    const upgradeMs = Date.now() - t0;
    const rss = peak.stop();
    const result = view.result!;
    expect(
      result.status,
      JSON.stringify(
        result.steps.filter((s) => s.status !== 'succeeded'),
        null,
        2,
      ),
    ).toBe('completed');
    // The cells' db sync ran for cell2 too.
    const sync = result.steps.find((s) => s.id === 'db-sync-cells')!;
    expect(sync.status).toBe('succeeded');
    expect(sync.summary).toContain('synced the cell2 database');

    // The cell2 conductor and compute run 34.0.0's code.
    for (const [n, unit] of [
      [controller, cellConductorUnit('cell2')],
      [cell2, NOVA_UNITS.compute],
    ] as const) {
      const file = readUnitFile({ node: nodeLayout(n.root) }, unit)!;
      expect({ unit: `${n.name}/${unit}`, venvs: venvsMappedBy(file.pid) }).toEqual({
        unit: `${n.name}/${unit}`,
        venvs: [`nova-${TO}`],
      });
    }
    // nova's own records: every live services row of every cell at 34.0.0's service version.
    await expectLiveServiceRowsAt(stateDir, ['nova_cell0', 'nova_cell1', 'nova_cell2'], after);
    // nova's API (a scatter-gather over the cells) lists the cell2 compute up and enabled, and
    // the cell2 conductor; the version itself is in the cell's services table above (the API
    // has no field for it).
    expect(await computeServiceList(controller)).toEqual(
      [
        'apicomp/nova-compute',
        'cell2-compute1/nova-compute',
        'controller/nova-compute',
        'controller/nova-conductor',
        'controller/nova-conductor',
        'controller/nova-conductor',
        'controller/nova-scheduler',
      ]
        .map((s) => `${s} up enabled`)
        .sort(),
    );

    // Online data migrations in every cell, cell2's read from the run records the tool left on
    // the controller: each round exited 0 (done) or 1 (more to do), the last one 0.
    const odm = result.steps.find((s) => s.id === 'online-migrations')!;
    expect(odm.status).toBe('succeeded');
    expect(odm.summary).toMatch(/cell2/);
    const cell2Conf = realFiles(controller.root).cellConf('cell2');
    const odmRuns = runRecords(controller.root)
      .filter((r) => r.command.includes('online_data_migrations') && r.command.includes(cell2Conf))
      .sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0));
    expect(odmRuns.length, JSON.stringify(runRecords(controller.root).map((r) => r.key))).toBeGreaterThan(0);
    for (const r of odmRuns) expect({ key: r.key, exit: r.exit }).toEqual({ key: r.key, exit: r.exit === 1 ? 1 : 0 });
    expect(odmRuns.at(-1)!.exit).toBe(0);
    // And nothing is left: nova-manage on cell2 exits 0 (runNodeBin throws otherwise), no row to migrate.
    const f = realFiles(controller.root);
    const out = await runNodeBin(controller, 'nova-manage', [
      '--config-file',
      f.novaConf,
      '--config-file',
      cell2Conf,
      'db',
      'online_data_migrations',
    ]);
    expect(out).toMatch(/Migration\s+\|\s+Total Needed/);
    expect(out).not.toMatch(/rows matched query/);
    expect(result.probe?.failedRequests, JSON.stringify(result.probe)).toBe(0);

    console.log(
      `real lab with cell2: up in ${labUpMs} ms; upgrade ${upgradeMs} ms; ${result.steps.length} steps; ` +
        `peak lab memory ${Math.round(rss.peakRssBytes / 2 ** 20)} MiB RSS summed, ${Math.round(rss.peakPssBytes / 2 ** 20)} MiB PSS, ${rss.peakProcesses} processes; ` +
        `online data migrations: ${odm.summary}; cell2 rounds ${odmRuns.map((r) => r.exit).join(',')}; workflow probe ${result.probe?.requests} requests, ${result.probe?.failedRequests} failed`,
    );
  }, 3_600_000);
});
