// The lab end to end: a real two-node devstack stand-in on 127.0.2.x, driven over real SSH with
// the tool's own default command templates, exactly as an upgrade would drive it.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEFAULT_COMMANDS, renderCommand, type CommandName } from '../inventory/commands';
import { validateInventory } from '../inventory/load';
import type { Inventory } from '../inventory/schema';
import { clearLabFault, setLabFault } from '../lab/faults';
import { addOrphanService, labDown, labEvents, labStatus, labUp, type LabInfo } from '../lab/lab';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

let dir: string;
let lab: LabInfo;
let inv: Inventory;

function ssh(node: string, command: string): Promise<Ran> {
  const n = inv.nodes.find((x) => x.name === node)!;
  const args = [
    '-i',
    inv.ssh.privateKeyPath!,
    '-o',
    `UserKnownHostsFile=${inv.ssh.knownHostsPath!}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-p',
    String(n.sshPort),
    `${n.sshUser}@${n.address}`,
    command,
  ];
  return new Promise((resolve) => {
    execFile('ssh', args, { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as { code?: unknown }).code === 'number'
          ? (err as { code: number }).code
          : -1
        : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Renders one of the inventory's templates (defaults unless the lab overrides them). */
function cmd(name: CommandName, values: Record<string, string | number> = {}): string {
  return renderCommand(name, inv.commands[name], {
    osCloud: inv.openstack.osCloud,
    ...(inv.devstack ? { venv: inv.devstack.venv } : {}),
    ...values,
  });
}

function props(out: string): Record<string, string> {
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

function get(
  url: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function connectRefused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

const maxVersion = (body: string) =>
  (JSON.parse(body) as { versions: Array<{ id: string; version: string }> }).versions.find((v) => v.id === 'v2.1')!
    .version;
const starts = (node: string, unit: string) =>
  labEvents(lab.stateDir, node).filter((e) => e.verb === 'start' && e.unit === unit).length;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nova-lab-test-'));
  lab = await labUp({ stateDir: join(dir, 'lab'), subnet: '127.0.2', apiMercySeconds: 5 });
  console.log(`lab up in ${lab.upMs} ms`);
  inv = validateInventory(parse(readFileSync(lab.inventoryPath, 'utf8')), lab.inventoryPath);
}, 90_000);

afterAll(async () => {
  if (lab) await labDown(lab.stateDir);
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe('lab', () => {
  it('writes an inventory the tool accepts, overriding only installCode, installPlacement and tempest', () => {
    expect(inv.cloud).toBe('lab');
    expect(inv.nodes.map((n) => [n.name, n.address, n.roles])).toEqual([
      ['controller', '127.0.2.2', ['controller', 'api', 'compute', 'lb']],
      ['apicomp', '127.0.2.3', ['api', 'compute']],
    ]);
    expect(inv.vip.url).toBe('http://127.0.2.100:8282');
    expect(inv.nodes[0]!.lb?.socket).toEqual({
      via: 'ssh',
      path: join(lab.stateDir, 'haproxy', 'controller', 'haproxy.sock'),
      sudo: true,
    });
    expect(inv.cells.map((c) => c.configFile)).toEqual([
      join(lab.stateDir, 'nodes/controller/etc/nova/nova.conf'),
      join(lab.stateDir, 'nodes/controller/etc/nova/nova_cell1.conf'),
    ]);
    const overridden = (Object.keys(DEFAULT_COMMANDS) as CommandName[]).filter(
      (k) => inv.commands[k] !== DEFAULT_COMMANDS[k],
    );
    expect(overridden.sort()).toEqual(['installCode', 'installPlacement', 'tempest']);
  });

  it('runs the default templates unchanged over real SSH', async () => {
    expect((await ssh('controller', cmd('codeVersion'))).stdout.trim()).toBe('30.0.0');

    const unit = 'devstack@n-sch';
    const before = props((await ssh('controller', cmd('serviceState', { unit, node: 'controller' }))).stdout);
    expect(before).toMatchObject({ ActiveState: 'active', SubState: 'running' });
    expect(Number(before.MainPID)).toBeGreaterThan(0);
    expect((await ssh('controller', cmd('serviceRestart', { unit, node: 'controller' }))).code).toBe(0);
    const after = props((await ssh('controller', cmd('serviceState', { unit, node: 'controller' }))).stdout);
    expect(after.ActiveState).toBe('active');
    expect(after.MainPID).not.toBe(before.MainPID);
    expect(BigInt(after.ExecMainStartTimestampMonotonic!)).toBeGreaterThan(
      BigInt(before.ExecMainStartTimestampMonotonic!),
    );
    expect(starts('controller', unit)).toBe(2);

    expect(
      (await ssh('controller', cmd('serviceHup', { unit: 'devstack@n-cond-cell1', node: 'controller' }))).code,
    ).toBe(0);
    await expect.poll(() => labEvents(lab.stateDir, 'controller').filter((e) => e.verb === 'hup').length).toBe(1);

    expect((await ssh('controller', cmd('apiDbSync'))).code).toBe(0);
    for (const cell of inv.cells)
      expect((await ssh('controller', cmd('dbSync', { config: cell.configFile, cell: cell.name }))).code).toBe(0);

    const check = await ssh('controller', cmd('upgradeCheck'));
    expect(check.code).toBe(0);
    expect(check.stdout).toContain('| Upgrade Check Results');
    expect(check.stdout).toContain('| Result: Success');

    const first = await ssh(
      'controller',
      cmd('onlineDataMigrations', {
        maxCount: 50,
        apiConfig: inv.apiConfigFile,
        config: inv.cells[1]!.configFile,
        cell: 'cell1',
      }),
    );
    expect(first.code).toBe(1);
    expect(first.stdout).toMatch(/\d+ rows matched query populate_\w+, \d+ migrated/);
    expect(first.stdout).toMatch(/\|\s+Migration\s+\|\s+Total Needed\s+\|\s+Completed\s+\|/);
    let last = first;
    for (let i = 0; i < 10 && last.code === 1; i++)
      last = await ssh(
        'controller',
        cmd('onlineDataMigrations', {
          maxCount: 50,
          apiConfig: inv.apiConfigFile,
          config: inv.cells[1]!.configFile,
          cell: 'cell1',
        }),
      );
    expect(last.code).toBe(0);

    const list = await ssh('controller', cmd('serviceList'));
    expect(list.code).toBe(0);
    const services = JSON.parse(list.stdout) as Array<Record<string, string>>;
    // --long, as real openstackclient prints it: the reason tells an operator's disable from ours.
    expect(Object.keys(services[0]!)).toEqual([
      'ID',
      'Binary',
      'Host',
      'Zone',
      'Status',
      'State',
      'Updated At',
      'Disabled Reason',
      'Forced Down',
    ]);
    expect(
      services
        .filter((s) => s.Binary === 'nova-compute')
        .map((s) => s.Host)
        .sort(),
    ).toEqual(['apicomp', 'controller']);
    expect(services.every((s) => s.State === 'up')).toBe(true);

    expect(
      (await ssh('controller', cmd('computeServiceDisable', { host: 'apicomp', reason: 'nova-upgrade batch 1' }))).code,
    ).toBe(0);
    const disabled = JSON.parse((await ssh('controller', cmd('serviceList'))).stdout) as Array<Record<string, string>>;
    expect(disabled.find((s) => s.Host === 'apicomp')!.Status).toBe('disabled');
    expect((await ssh('controller', cmd('computeServiceEnable', { host: 'apicomp' }))).code).toBe(0);
    expect(JSON.parse((await ssh('controller', cmd('serverTasksOnHost', { host: 'apicomp' }))).stdout)).toEqual([]);

    const endpoints = JSON.parse((await ssh('controller', cmd('endpointList'))).stdout) as Array<
      Record<string, string>
    >;
    expect(endpoints).toHaveLength(1);
    expect(
      (await ssh('controller', cmd('endpointSet', { url: inv.vip.computeEndpointUrl, endpointId: endpoints[0]!.ID! })))
        .code,
    ).toBe(0);
    expect(
      (JSON.parse((await ssh('controller', cmd('endpointList'))).stdout) as Array<Record<string, string>>)[0]!.URL,
    ).toBe(inv.vip.computeEndpointUrl);

    expect((await ssh('apicomp', cmd('readFile', { path: inv.nodes[1]!.configFiles[0]! }))).stdout).toMatch(
      /\[api_database\][\s\S]*\[database\]/,
    );
  });

  it('shows a host that is gone as a down orphan', async () => {
    addOrphanService(lab.stateDir, 'oldcompute');
    const services = JSON.parse((await ssh('controller', cmd('serviceList'))).stdout) as Array<Record<string, string>>;
    expect(services.find((s) => s.Host === 'oldcompute')).toMatchObject({ Binary: 'nova-compute', State: 'down' });
  });

  it('serves nova through the VIP, and a restarted node serves its new release', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = await get(`${inv.vip.url}/`);
      expect(r.status).toBe(200);
      expect(maxVersion(r.body)).toBe('2.96');
      seen.add(String(r.headers['x-lab-node']));
    }
    expect([...seen].sort()).toEqual(['apicomp', 'controller']);

    expect((await ssh('apicomp', cmd('installCode', { version: '31.0.0', node: 'apicomp' }))).code).toBe(0);
    expect((await get('http://127.0.2.3:8774/v2.1/')).body).toContain('"2.96"');
    expect((await ssh('apicomp', cmd('serviceRestart', { unit: 'devstack@n-api', node: 'apicomp' }))).code).toBe(0);
    const direct = await get('http://127.0.2.3:8774/v2.1/');
    expect(JSON.parse(direct.body).version.version).toBe('2.100');
    expect(direct.headers['x-lab-version']).toBe('31.0.0');
    const versions = new Set<string>();
    for (let i = 0; i < 4; i++) versions.add(maxVersion((await get(`${inv.vip.url}/`)).body));
    expect([...versions].sort()).toEqual(['2.100', '2.96']);
  });

  it('drains in-flight requests on SIGTERM while refusing new connections', async () => {
    let answeredAt = 0;
    const inFlight = get('http://127.0.2.3:8774/v2.1/servers?delay_ms=3000').then(
      (r) => ((answeredAt = Date.now()), r),
    );
    await new Promise((r) => setTimeout(r, 150));
    const stop = ssh('apicomp', cmd('serviceStop', { unit: 'devstack@n-api', node: 'apicomp' }));
    // The stop travels over SSH, slow on a loaded machine: poll, but only while the request is in flight.
    let refusedAt = 0;
    for (
      const deadline = Date.now() + 2500;
      !refusedAt && Date.now() < deadline;
      await new Promise((r) => setTimeout(r, 50))
    ) {
      if (await connectRefused('127.0.2.3', 8774)) refusedAt = Date.now();
    }
    expect(refusedAt).toBeGreaterThan(0);
    expect((await inFlight).status).toBe(200);
    expect(refusedAt).toBeLessThan(answeredAt);
    expect((await stop).code).toBe(0);
    expect(
      props((await ssh('apicomp', cmd('serviceState', { unit: 'devstack@n-api', node: 'apicomp' }))).stdout),
    ).toMatchObject({ ActiveState: 'inactive', MainPID: '0' });
    expect(
      labEvents(lab.stateDir, 'apicomp')
        .filter((e) => e.verb === 'exit')
        .at(-1)!.fields.how,
    ).toBe('drained');
    expect((await ssh('apicomp', cmd('serviceStart', { unit: 'devstack@n-api', node: 'apicomp' }))).code).toBe(0);
  });

  it('runs tempest with stestr: passes, fails on the fault, prints no Totals for a filter that matches nothing', async () => {
    const ok = await ssh('controller', cmd('tempest'));
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/Totals[\s\S]*Ran: 9 tests[\s\S]*- Passed: 9[\s\S]*- Failed: 0/);

    setLabFault(lab.stateDir, 'tempest', 'test_show_flavor');
    const bad = await ssh('controller', cmd('tempest'));
    clearLabFault(lab.stateDir, 'tempest');
    expect(bad.code, bad.stdout + bad.stderr).toBe(1);
    expect(bad.stdout).toMatch(/- Passed: 8[\s\S]*- Failed: 1/);
    expect(bad.stdout).toContain('lab fault injected: test_show_flavor');

    const none = await ssh('controller', `cd ${lab.stateDir}/tempest && tempest run --regex matches_no_test_at_all`);
    expect(none.code).not.toBe(0);
    expect(none.stdout).not.toContain('Totals');
  });

  it('is idempotent: a second lab up reuses what runs', async () => {
    const before = labStatus(lab.stateDir);
    const again = await labUp({ stateDir: lab.stateDir, subnet: '127.0.2', apiMercySeconds: 5 });
    const after = labStatus(lab.stateDir);
    expect(after.up).toBe(true);
    expect(after.nodes.map((n) => [n.sshd, n.services.map((s) => s.pid)])).toEqual(
      before.nodes.map((n) => [n.sshd, n.services.map((s) => s.pid)]),
    );
    expect(again.lbs[0]!.pid).toBe(before.haproxy[0]!.pid);
    // The upgrade's progress survives: apicomp still has the release installed above.
    expect(after.nodes.find((n) => n.name === 'apicomp')!.codeVersion).toBe('31.0.0');
  });

  it('lab down leaves no process behind', async () => {
    // A session's leftover, as a detached upgrade step would be.
    expect((await ssh('apicomp', 'setsid sleep 300 </dev/null >/dev/null 2>&1 &')).code).toBe(0);
    await labDown(lab.stateDir);
    const status = labStatus(lab.stateDir);
    expect(status.up).toBe(false);
    expect(status.nodes.every((n) => !n.sshd && n.services.every((s) => s.pid === 0))).toBe(true);
    expect(status.haproxy.every((h) => !h.pid)).toBe(true);
    const leftovers = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
          if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') return false;
          return (
            readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(lab.stateDir) ||
            readFileSync(`/proc/${p}/environ`, 'utf8').includes(`NOVA_LAB_STATE=${lab.stateDir}`)
          );
        } catch {
          return false;
        }
      });
    expect(leftovers).toEqual([]);
    expect(await connectRefused('127.0.2.100', 8282)).toBe(true);
  });
});
