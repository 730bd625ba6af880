// What a real cloud has that the lab's defaults hid (issue 11), each made to happen on the
// stand-in lab on 127.0.32.x over real SSH: a cell nova maps and the inventory lacks, a catalog
// with two regions, placement's own code, and a metadata API behind its own HAProxy backend.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createActivities } from '../activities';
import { createCellActivities, parseCellList } from '../activities/nova/cells';
import { createConfigActivities } from '../activities/nova/config';
import { getIniOption } from '../activities/nova/ini';
import { createKeystoneActivities } from '../activities/nova/keystone';
import { createManageActivities } from '../activities/nova/manage';
import { SshPool } from '../activities/ssh/pool';
import type { SshTarget } from '../common/sshTarget';
import { cmd, placementInstallCommand, targetOf } from '../common/topology';
import { validateInventory } from '../inventory/load';
import type { Inventory } from '../inventory/schema';
import { labDown, labUp, runOnNode, type LabInfo } from '../lab/lab';
import { addLabCell, addLabEndpoint, readEndpoints, readSchema } from '../lab/node/cloud';
import { plannedSteps } from '../workflows/runbook';
import { activityEnv, failureOf } from './helpers/activityEnv';
import { SshLab } from './helpers/sshLab';
import { runCli } from './helpers/cli';
import { untilProgress } from './helpers/progress';
import { sharedTemporal, workflowBundle } from './temporalEnv';
import { abortSignal, approveUpdate, PHASES, type UpgradeInput, type UpgradeResult } from '../common/messages';
import { newScript, scriptedActivities, useProbeClient } from './helpers/scriptedActivities';
import { novaUpgrade } from '../workflows/upgrade';

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
      /^nova has cell "cell2" \([0-9a-f-]{36}\) that the inventory's cells do not list: add it to cells with its config file, or its database is never synced nor migrated \(`\S*\/nova-manage cell_v2 list_cells` on controller\)$/,
    );
  });
});

describe("keystone's compute endpoint in one region", () => {
  const keystone = () => createKeystoneActivities({ runner: pool });
  const input = (i: Inventory) => ({
    target: targetOf(i, i.controller),
    osCloud: i.openstack.osCloud,
    listTemplate: i.commands.endpointList,
    setTemplate: i.commands.endpointSet,
    url: i.vip.computeEndpointUrl,
    ...(i.openstack.region ? { region: i.openstack.region } : {}),
    interfaces: i.vip.computeEndpointInterfaces,
  });
  const urls = () =>
    Object.fromEntries(
      readEndpoints(lab.stateDir)
        .filter((e) => e['Service Type'] === 'compute')
        .map((e) => [`${e.Region}/${e.Interface}`, e.URL]),
    );

  it('the stand-in openstack filters by --region and moves an endpoint on set --region, as openstackclient does', async () => {
    addLabEndpoint(lab.stateDir, {
      Region: 'RegionTwo',
      'Service Name': 'nova',
      'Service Type': 'compute',
      Interface: 'public',
      URL: 'http://127.0.32.200:8774/v2.1',
    });
    const ctl = lab.nodes[0]!;
    const env = { ...ctl.env, OS_CLOUD: inv.openstack.osCloud };
    const list = await runOnNode({ env }, 'openstack', [
      'endpoint',
      'list',
      '--service',
      'compute',
      '--region',
      'RegionTwo',
      '-f',
      'json',
    ]);
    expect((JSON.parse(list.stdout) as Array<{ Region: string }>).map((e) => e.Region)).toEqual(['RegionTwo']);
    await expect(
      runOnNode({ env }, 'openstack', ['endpoint', 'list', '--region', 'RegionNine', '-f', 'json']),
    ).rejects.toThrow(/No Region found for RegionNine/);
    const image = addLabEndpoint(lab.stateDir, {
      Region: 'RegionOne',
      'Service Name': 'glance',
      'Service Type': 'image',
      Interface: 'public',
      URL: 'http://127.0.32.2:9292',
    });
    await runOnNode({ env }, 'openstack', ['endpoint', 'set', '--region', 'RegionTwo', image.ID]);
    expect(readEndpoints(lab.stateDir).find((e) => e.ID === image.ID)?.Region).toBe('RegionTwo');
  });

  it('refuses to choose when the catalog has two regions and the inventory names none, changing nothing', async () => {
    const before = urls();
    const err = await failureOf(activityEnv().run(keystone().pointComputeEndpointAtVip, input(inv)));
    expect(err.type).toBe('NovaEndpointRegionUnnamed');
    expect(err.message).toBe(
      "keystone's catalog has compute endpoints in regions RegionOne, RegionTwo (`OS_CLOUD=devstack-admin openstack endpoint list --service compute -f json` on controller): name the region whose endpoint points at the VIP in openstack.region",
    );
    expect(urls()).toEqual(before);
  });

  it("changes only the inventory's region and interfaces, to exactly the inventory's URL", async () => {
    addLabEndpoint(lab.stateDir, {
      Region: 'RegionOne',
      'Service Name': 'nova',
      'Service Type': 'compute',
      Interface: 'internal',
      URL: 'http://127.0.32.2:8774/v2.1',
    });
    const raw = parse(readFileSync(lab.inventoryPath, 'utf8')) as Record<string, Record<string, unknown>>;
    const one = validateInventory({ ...raw, openstack: { ...raw.openstack, region: 'RegionOne' } });
    const before = urls();
    const r = await activityEnv().run(keystone().pointComputeEndpointAtVip, input(one));
    expect(r.region).toBe('RegionOne');
    expect(r.alreadyDone).toBe(false);
    expect(r.summary).toBe(
      `pointed keystone's public compute endpoint in region RegionOne at ${one.vip.computeEndpointUrl} (was public ${r.endpointIds[0]} → ${before['RegionOne/public']})`,
    );
    expect(urls()).toEqual({ ...before, 'RegionOne/public': one.vip.computeEndpointUrl });
    // Only `endpoint set --url`, by id: a --region there would move the endpoint.
    expect(r.commands.map((c) => c.command).filter((c) => c.includes('endpoint set'))).toEqual([
      `OS_CLOUD=devstack-admin openstack endpoint set --url ${one.vip.computeEndpointUrl} ${r.endpointIds[0]}`,
    ]);
    const again = await activityEnv().run(keystone().pointComputeEndpointAtVip, input(one));
    expect(again.alreadyDone).toBe(true);

    // Both interfaces when the inventory names both; RegionTwo is still left alone.
    const both = validateInventory({
      ...raw,
      openstack: { ...raw.openstack, region: 'RegionOne' },
      vip: { ...raw.vip, computeEndpointInterfaces: ['public', 'internal'] },
    });
    await activityEnv().run(keystone().pointComputeEndpointAtVip, input(both));
    expect(urls()).toEqual({
      'RegionOne/public': both.vip.computeEndpointUrl,
      'RegionOne/internal': both.vip.computeEndpointUrl,
      'RegionTwo/public': 'http://127.0.32.200:8774/v2.1',
    });
  });

  it('is a change of before-window, and the dry run shows the region, the new URL and where the old one is recorded', () => {
    const raw = parse(readFileSync(lab.inventoryPath, 'utf8')) as Record<string, Record<string, unknown>>;
    const one = validateInventory({ ...raw, openstack: { ...raw.openstack, region: 'RegionOne' } });
    const plan = plannedSteps(one);
    expect(plan.some((s) => s.id === 'point-endpoint-at-vip')).toBe(false);
    const step = plan.find((s) => s.id === 'change-compute-endpoint')!;
    expect(step.phase).toBe('before-window');
    expect(plan.filter((s) => s.phase === 'before-window')[0]!.id).toBe('change-compute-endpoint');
    expect(step.title).toBe(
      `change keystone's public compute endpoint in region RegionOne to ${one.vip.computeEndpointUrl} (the old URL is read and recorded in this step's summary when it runs)`,
    );
    expect(step.commands.map((c) => c.command)).toEqual([
      'OS_CLOUD=devstack-admin openstack endpoint list --service compute -f json',
      `OS_CLOUD=devstack-admin openstack endpoint set --url ${one.vip.computeEndpointUrl} '<id of the public compute endpoint in RegionOne>'`,
    ]);
  });
});

describe('nova.conf edits by a non-root login whose nova.conf needs sudo', () => {
  // A real sshd and the real sudo: the login is an unprivileged user with password-less sudo,
  // and nova.conf is root's, mode 0640, as packaged nova ships it.
  const USER = 'nu32-cfg';
  const SUDOERS = '/etc/sudoers.d/nova-upgrade-test-cloud32';
  const ssh = new SshLab();
  let target: SshTarget;
  let confDir: string;

  beforeAll(async () => {
    try {
      execFileSync('id', [USER], { stdio: 'ignore' });
    } catch {
      execFileSync(
        'useradd',
        ['--system', '--no-create-home', '--home-dir', '/', '--shell', '/bin/sh', '--password', '*', USER],
        { stdio: 'ignore' },
      );
    }
    writeFileSync(`${SUDOERS}.new`, `${USER} ALL=(ALL) NOPASSWD: ALL\n`);
    chmodSync(`${SUDOERS}.new`, 0o440);
    execFileSync('visudo', ['-c', '-q', '-f', `${SUDOERS}.new`]);
    execFileSync('mv', [`${SUDOERS}.new`, SUDOERS]);
    const node = await ssh.node('cfg', '127.0.32.50');
    // sshd reads authorized_keys as the user logging in.
    for (const d of [ssh.root, node.sshd.dir]) chmodSync(d, 0o755);
    chmodSync(join(node.sshd.dir, 'authorized_keys'), 0o644);
    chmodSync(join(ssh.root, 'client'), 0o755);
    target = node.target({ username: USER });
    confDir = join(ssh.root, 'etc-nova');
    mkdirSync(confDir, { mode: 0o755 });
  }, 30_000);

  afterAll(() => {
    ssh.cleanup();
    rmSync(SUDOERS, { force: true });
    try {
      execFileSync('userdel', [USER], { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
  });

  const NOVA_CONF = '[DEFAULT]\nmy_ip = 10.0.0.11\n\n[upgrade_levels]\n#compute = <None>\n';

  it('pins compute=auto through sudo with the default templates, keeping owner and mode; without sudo it is refused', async () => {
    const path = join(confDir, 'nova.conf');
    writeFileSync(path, NOVA_CONF);
    chmodSync(path, 0o640);
    const i = inv;
    const config = createConfigActivities({ runner: pool });
    // The negative control first: as the login itself, the file cannot even be read.
    const asLogin = await failureOf(
      activityEnv().run(config.setUpgradeLevelsCompute, { target, path, readCommand: `cat ${path}`, key: 'k0' }),
    );
    expect(asLogin.message).toContain('Permission denied');
    // Read through sudo but written as the login: the write is refused and the file is unchanged.
    const writeAsLogin = await failureOf(
      activityEnv().run(config.setUpgradeLevelsCompute, {
        target,
        path,
        readCommand: cmd(i, 'readFile', { path }),
        key: 'k1',
      }),
    );
    expect(writeAsLogin.type).toBe('NovaConfigWriteFailed');
    expect(readFileSync(path, 'utf8')).toBe(NOVA_CONF);

    // What the upgrade's ops pass: readFile and writeFile, both through sudo.
    const r = await activityEnv().run(config.setUpgradeLevelsCompute, {
      target,
      path,
      readCommand: cmd(i, 'readFile', { path }),
      writeTemplate: i.commands.writeFile,
      key: 'k2',
    });
    expect(r.alreadyDone).toBe(false);
    expect(getIniOption(readFileSync(path, 'utf8'), 'upgrade_levels', 'compute')).toBe('auto');
    const st = statSync(path);
    expect([st.uid, st.mode & 0o777]).toEqual([0, 0o640]);
    expect(r.commands.map((c) => c.command)).toEqual([
      `sudo cat ${path}`,
      `write ${path} atomically (backup ${r.backupPath!})`,
      `sudo cat ${path}`,
    ]);
    // The plan shows the write through sudo, so the preflight checks sudo on that node.
    const pin = plannedSteps(inv).find((s) => s.id === 'pin-compute-rpc')!;
    expect(pin.commands.filter((c) => c.node === 'controller' && c.command.startsWith('sudo sh -c ')).length).toBe(
      inv.nodes[0]!.configFiles.length,
    );
    const again = await activityEnv().run(config.setUpgradeLevelsCompute, {
      target,
      path,
      readCommand: cmd(i, 'readFile', { path }),
      writeTemplate: i.commands.writeFile,
      key: 'k3',
    });
    expect(again.alreadyDone).toBe(true);
  });
});

describe("placement's own code", () => {
  it('installs the new placement before its db sync and restart; without the install the old release is synced again', async () => {
    const manage = createManageActivities({ runner: pool });
    const ctl = targetOf(inv, inv.controller);
    const stateDir = inv.remoteStateDir;
    const placementVersion = async () =>
      (await runOnNode(lab.nodes[0]!, 'placement-manage', ['--version'])).stdout.trim();
    // nova's new code on the controller (before-window) does not bring placement's.
    await runOnNode(lab.nodes[0]!, 'lab-install-code', [lab.options.toVersion]);
    expect(await placementVersion()).toBe('12.0.0');
    // What the step did before: db sync and restart of the code that is there, the old release.
    await activityEnv().run(manage.upgradePlacement, {
      target: ctl,
      command: cmd(inv, 'upgradePlacement', { version: inv.release.to, node: inv.controller }),
      key: 'cloud-placement-old',
      stateDir,
      pollMs: 100,
    });
    expect(readSchema(lab.stateDir).placement?.release).toBe('12.0.0');

    const step = plannedSteps(inv).find((s) => s.id === 'upgrade-placement')!;
    expect(step.commands.map((c) => c.command)).toEqual([
      'lab-install-code --placement 31.0.0',
      `${lab.stateDir}/bin/placement-manage db sync && sudo systemctl restart devstack@placement-api`,
    ]);
    const installed = await activityEnv().run(manage.installPlacement, {
      target: ctl,
      command: placementInstallCommand(inv),
      release: inv.release.to,
      key: 'cloud-placement-install',
      stateDir,
      pollMs: 100,
    });
    expect(installed.summary).toBe('installed placement for nova 31.0.0 on controller');
    await activityEnv().run(manage.upgradePlacement, {
      target: ctl,
      command: cmd(inv, 'upgradePlacement', { version: inv.release.to, node: inv.controller }),
      key: 'cloud-placement-new',
      stateDir,
      pollMs: 100,
    });
    expect(await placementVersion()).toBe('13.0.0');
    expect(readSchema(lab.stateDir).placement?.release).toBe('13.0.0');
    // The default template checks out the series' placement: 2025.1 for nova 31.
    const devstack = validateInventory({ ...(parse(readFileSync(lab.inventoryPath, 'utf8')) as object), commands: {} });
    expect(placementInstallCommand(devstack)).toBe(
      `cd /opt/stack/placement && git fetch origin && git checkout origin/stable/2025.1 && ${lab.stateDir}/bin/pip install -e /opt/stack/placement`,
    );
  });
});

describe('a template corrected while its step is held', () => {
  it('refuses a change unless held or a template the inventory check refuses; the corrected one is used on retry and recorded', async () => {
    const t = sharedTemporal();
    const taskQueue = `cloud-templates-${randomUUID()}`;
    const nativeConnection = await NativeConnection.connect({ address: t.address });
    const client = new Client({ connection: await Connection.connect({ address: t.address }), namespace: t.namespace });
    const worker = await Worker.create({
      connection: nativeConnection,
      namespace: t.namespace,
      taskQueue,
      workflowBundle: workflowBundle(),
      activities: createActivities({ runner: pool }),
    });
    const running = worker.run();
    const cli = (...args: string[]) =>
      runCli([...args, '--address', t.address, '--namespace', t.namespace, '--task-queue', taskQueue], {
        NOVA_UPGRADE_OPERATOR: 'carol',
      });
    try {
      const raw = parse(readFileSync(lab.inventoryPath, 'utf8')) as Record<string, Record<string, unknown>>;
      // A typo, as an operator's template might have one: the stand-in nova-manage exits 2 on it.
      const wrong = validateInventory({
        ...raw,
        commands: { ...raw.commands, cellList: 'nova-manage cell_v2 list_cell' },
      });
      const workflowId = `nova-upgrade-cloud-templates-${randomUUID().slice(0, 8)}`;
      const h = await client.workflow.start(novaUpgrade, {
        taskQueue,
        workflowId,
        args: [{ inventory: wrong, autoApprove: [], startedBy: 'test' } satisfies UpgradeInput],
      });
      await untilProgress(h, (p) => p.pendingApproval?.phase === 'before-upgrade', 'the first gate');
      const early = await cli('templates', 'set', workflowId, 'cellList=nova-manage cell_v2 list_cells');
      expect(early.code).not.toBe(0);
      expect(early.stderr).toContain(
        'refused: command templates can be changed only while a step is held (nothing runs then); this upgrade holds no step now',
      );
      await h.executeUpdate(approveUpdate, { args: [{ phase: 'before-upgrade', approver: 'carol' }] });
      const held = await untilProgress(
        h,
        (p) => p.pendingDecision?.stepId === 'check-cells',
        'the hold at check-cells',
      );
      expect(held.steps.find((s) => s.id === 'check-cells')?.error).toContain('`nova-manage cell_v2 list_cell`');

      const badPlaceholder = await cli(
        'templates',
        'set',
        workflowId,
        'cellList=nova-manage --config-file {config} cell_v2 list_cells',
      );
      expect(badPlaceholder.stderr).toContain(
        'refused: commands.cellList: unknown placeholder {config}; this template may use {venv}',
      );
      const unknown = await cli('templates', 'set', workflowId, 'cellsList=nova-manage cell_v2 list_cells');
      expect(unknown.stderr).toContain('refused: commands.cellsList: not a command template; the templates are ');

      const set = await cli(
        'templates',
        'set',
        workflowId,
        'cellList=nova-manage cell_v2 list_cells',
        '--reason',
        'typo',
      );
      expect(set.stdout).toContain('changed cellList while check-cells is held; "retry" runs it with the new template');
      const retry = await cli('retry', workflowId);
      expect(retry.code).toBe(0);
      // The corrected template reads nova's cells, and nova has cell2 (added above), which the
      // inventory lacks: the upgrade is refused at its start, with the sentence naming it.
      const refused = await untilProgress(
        h,
        (p) =>
          p.pendingDecision?.stepId === 'check-cells' &&
          (p.steps.find((s) => s.id === 'check-cells')?.attempts ?? 0) >= 2,
        'the second hold at check-cells',
      );
      expect(refused.steps.find((s) => s.id === 'check-cells')?.error).toMatch(
        /nova has cell "cell2" \([0-9a-f-]{36}\) that the inventory's cells do not list: add it to cells with its config file, or its database is never synced nor migrated \(`nova-manage cell_v2 list_cells` on controller\)/,
      );
      expect(refused.templateChanges).toEqual([
        {
          at: expect.any(String),
          by: 'carol',
          reason: 'typo',
          stepId: 'check-cells',
          changes: { cellList: { from: 'nova-manage cell_v2 list_cell', to: 'nova-manage cell_v2 list_cells' } },
        },
      ]);
      const history = JSON.stringify((await h.fetchHistory()).events);
      expect(history).toContain('setTemplates');
      await h.signal(abortSignal, { by: 'carol', reason: 'cell2 first' });
      const result = (await h.result()) as UpgradeResult;
      expect(result.status).toBe('aborted');
      expect(result.steps.filter((s) => s.status === 'succeeded').map((s) => s.id)).toEqual(['check-node-access']);
    } finally {
      worker.shutdown();
      await running;
      await nativeConnection.close();
      await client.connection.close();
    }
  }, 180_000);
});

describe('nova-metadata behind a backend of its own', () => {
  it('drains every backend that routes to the metadata API before its restart, waits, and enables it after', async () => {
    const raw = parse(readFileSync('examples/seed-two-node.yaml', 'utf8')) as {
      nodes: Array<Record<string, unknown>>;
    } & Record<string, unknown>;
    const services = [
      { unit: 'devstack@n-super-cond', kind: 'conductor' },
      { unit: 'devstack@n-cond-cell1', kind: 'conductor' },
      { unit: 'devstack@n-sch', kind: 'scheduler' },
      { unit: 'devstack@n-api', kind: 'api' },
      { unit: 'devstack@n-api-meta', kind: 'metadata', haproxyBackends: ['nova-metadata'] },
      { unit: 'devstack@n-cpu', kind: 'compute' },
    ];
    const i = validateInventory({
      ...raw,
      cloud: `meta${randomUUID().slice(0, 6)}`,
      retry: { maximumAttempts: 1, initialIntervalSeconds: 1 },
      nodes: raw.nodes.map((n, k) => (k === 0 ? { ...n, services } : n)),
    });
    const ctl = i.controller;
    const plan = plannedSteps(i).map((s) => s.id);
    const at = (id: string) => {
      expect(plan).toContain(id);
      return plan.indexOf(id);
    };
    // Not restarted in place any more: only behind its own drain.
    const restart = plan.filter((id) => id.includes('devstack@n-api-meta'));
    expect(restart).toHaveLength(1);
    expect(at('record-weights:nova-metadata')).toBeLessThan(at(`drain:nova-metadata/${ctl}`));
    expect(at(`drain:nova-metadata/${ctl}`)).toBeLessThan(at(`wait-sessions:nova-metadata/${ctl}`));
    expect(at(`wait-sessions:nova-metadata/${ctl}`)).toBeLessThan(plan.indexOf(restart[0]!));
    expect(plan.indexOf(restart[0]!)).toBeLessThan(at(`enable:nova-metadata/${ctl}`));
    expect(at(`enable:nova-metadata/${ctl}`)).toBeLessThan(at(`wait-up:nova-metadata/${ctl}`));

    // And so it runs, on the real Temporal server with scripted activities.
    const t = sharedTemporal();
    const taskQueue = `cloud-meta-${randomUUID()}`;
    const script = newScript();
    const nativeConnection = await NativeConnection.connect({ address: t.address });
    const client = new Client({ connection: await Connection.connect({ address: t.address }), namespace: t.namespace });
    useProbeClient(client);
    const worker = await Worker.create({
      connection: nativeConnection,
      namespace: t.namespace,
      taskQueue,
      workflowBundle: workflowBundle(),
      activities: scriptedActivities(script),
    });
    const running = worker.run();
    try {
      const h = await client.workflow.start(novaUpgrade, {
        taskQueue,
        workflowId: `nova-upgrade-${i.cloud}`,
        args: [{ inventory: i, autoApprove: [...PHASES], startedBy: 'test' } satisfies UpgradeInput],
      });
      const result = (await h.result()) as UpgradeResult;
      expect(result.status).toBe('completed');
      const calls = script.calls.map((c) => ({
        name: c.name,
        backend: c.input.backend as string | undefined,
        server: c.input.server as string | undefined,
        unit: c.input.unit as string | undefined,
      }));
      const idx = (pred: (c: (typeof calls)[number]) => boolean) => calls.findIndex(pred);
      const meta = (name: string) => idx((c) => c.name === name && c.backend === 'nova-metadata' && c.server === ctl);
      const restartMeta = idx((c) => /^restartService(Checked)?$/.test(c.name) && c.unit === 'devstack@n-api-meta');
      expect(restartMeta).toBeGreaterThan(-1);
      expect(meta('drainApiServer')).toBeGreaterThan(-1);
      expect(meta('drainApiServer')).toBeLessThan(meta('waitForNoSessions'));
      expect(meta('waitForNoSessions')).toBeLessThan(restartMeta);
      expect(restartMeta).toBeLessThan(meta('enableApiServer'));
      expect(meta('enableApiServer')).toBeLessThan(meta('waitForServerUp'));
      expect(
        calls.filter((c) => /^restartService(Checked)?$/.test(c.name) && c.unit === 'devstack@n-api-meta'),
      ).toHaveLength(1);
      // nova-api's own backend is drained and enabled as before.
      expect(calls.some((c) => c.name === 'drainApiServer' && c.backend === 'nova-api')).toBe(true);
    } finally {
      worker.shutdown();
      await running;
      await nativeConnection.close();
      await client.connection.close();
    }
  }, 180_000);
});

describe('the inventory fields for regions and backends', () => {
  it('refuses an interface or a backend named twice, by field and node', () => {
    const raw = parse(readFileSync('examples/seed-two-node.yaml', 'utf8')) as {
      nodes: Array<Record<string, unknown>>;
      vip: Record<string, unknown>;
    } & Record<string, unknown>;
    expect(() =>
      validateInventory({
        ...raw,
        vip: { ...raw.vip, computeEndpointInterfaces: ['public', 'public'] },
        nodes: raw.nodes.map((n, k) =>
          k === 0
            ? {
                ...n,
                services: [
                  { unit: 'a', kind: 'api' },
                  { unit: 'm', kind: 'metadata', haproxyBackends: ['x', 'x'] },
                ],
              }
            : n,
        ),
      }),
    ).toThrow(
      'inventory: 2 problems in the inventory:\n  - vip.computeEndpointInterfaces: must name each interface once\n  - nodes[0] (controller).services[1].haproxyBackends: must name each backend once',
    );
  });
});
