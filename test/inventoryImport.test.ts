// Importers on the projects' own example files: kolla-ansible's ansible/inventory/multinode and
// etc/kolla/globals.yml, OpenStack-Ansible's etc/openstack_deploy/openstack_user_config.yml.example.
// They are kept unchanged in test/fixtures/importers/ (ORIGIN.md there gives their commit and licence).
// Where a test changes a file, it does what an operator does to it (uncomment a line) at run time.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseInventoryText } from '../inventory/load';
import { expandHostPattern, hostsOf, parseAnsibleInventory, varsOf } from '../inventory/import/ansibleInventory';
import { drainedServices, inPlaceRestarts } from '../common/topology';
import { runCli } from './helpers/cli';

const FIXTURES = resolve(__dirname, 'fixtures', 'importers');
const MULTINODE = join(FIXTURES, 'kolla-ansible-multinode');
const GLOBALS = join(FIXTURES, 'kolla-ansible-globals.yml');
const OSA = join(FIXTURES, 'openstack_user_config.yml.example');
const work = mkdtempSync(join(tmpdir(), 'inventory-import-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const RELEASE = ['--release-from', '30.0.0', '--release-to', '31.0.0'];

function fixture(path: string): string {
  if (!existsSync(path))
    throw new Error(`missing fixture ${path}: the importer tests read the projects' example files from ${FIXTURES}`);
  return readFileSync(path, 'utf8');
}

function written(name: string, text: string): string {
  const path = join(work, name);
  writeFileSync(path, text);
  return path;
}

/** The example globals.yml with the one line every operator sets: the internal VIP. */
function globalsWithVip(): string {
  const text = fixture(GLOBALS);
  expect(text).toMatch(/^#kolla_internal_vip_address: "10\.10\.10\.254"$/m);
  return written(
    'globals.yml',
    text.replace(/^#kolla_internal_vip_address: "10\.10\.10\.254"$/m, 'kolla_internal_vip_address: "10.10.10.254"'),
  );
}

/** Each `# level:` example of the commented OpenStack-Ansible file, uncommented, levels merged. */
function osaExamplesUncommented(): string {
  const lines = fixture(OSA).split('\n');
  const levels: Record<string, string[]> = {};
  lines.forEach((line, i) => {
    const m = /^# ([a-z_]+):\s*$/.exec(line);
    if (!m) return;
    const body: string[] = [];
    for (let j = i + 1; j < lines.length && /^# {2,}\S/.test(lines[j]!); j++) body.push(lines[j]!.slice(2));
    if (body.length) (levels[m[1]!] ??= []).push(...body);
  });
  return Object.entries(levels)
    .map(([level, body]) => `${level}:\n${body.join('\n')}`)
    .join('\n');
}

describe('Ansible inventories as Ansible reads them', () => {
  it("reads kolla-ansible's multinode: groups through :children, the deployment host, and its commented range form", () => {
    const inv = parseAnsibleInventory(fixture(MULTINODE), MULTINODE);
    expect(hostsOf(inv, 'nova-api')).toEqual(['control01', 'control02', 'control03']);
    expect(hostsOf(inv, 'compute')).toEqual(['compute01']);
    expect(hostsOf(inv, 'loadbalancer')).toEqual(['network01', 'network02']);
    expect(varsOf(inv, 'localhost')).toMatchObject({ ansible_connection: 'local' });
    expect(expandHostPattern('control[01:03]', 'x')).toEqual(['control01', 'control02', 'control03']);
    expect(expandHostPattern('db-[a:c].example', 'x')).toEqual(['db-a.example', 'db-b.example', 'db-c.example']);
  });

  it('resolves variables all < parent group < child group < host, from INI and YAML alike', () => {
    const ini = parseAnsibleInventory(
      '[all:vars]\nansible_user=a\n[api]\nh1 ansible_port=2200\nh2\n[api:vars]\nansible_user=b\n[ctl:children]\napi\n[ctl:vars]\nansible_user=c\n',
      'i',
    );
    expect(varsOf(ini, 'h1')).toMatchObject({ ansible_user: 'b', ansible_port: '2200' });
    const yaml = parseAnsibleInventory(
      'all:\n  vars: { ansible_user: a }\n  children:\n    ctl:\n      vars: { ansible_user: c }\n      children:\n        api:\n          vars: { ansible_user: b }\n          hosts:\n            h1: { ansible_port: 2200 }\n            h2:\n',
      'y',
    );
    expect(varsOf(yaml, 'h1')).toMatchObject({ ansible_user: 'b', ansible_port: 2200 });
    expect(hostsOf(yaml, 'ctl')).toEqual(['h1', 'h2']);
  });
});

describe('nova-upgrade inventory import --from kolla-ansible', () => {
  it("refuses kolla-ansible's own example globals.yml: its VIP is commented out", async () => {
    const r = await runCli(['inventory', 'import', '--from', 'kolla-ansible', MULTINODE, GLOBALS, ...RELEASE]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `nova-upgrade: cannot import: ${GLOBALS}: kolla_internal_vip_address is not set (kolla-ansible's example globals.yml leaves it commented out): set it in globals.yml, or pass --vip\n`,
    );
  });

  it('writes an inventory that loads, with every assumed value commented, once the VIP is set', async () => {
    const r = await runCli(['inventory', 'import', '--from', 'kolla-ansible', MULTINODE, globalsWithVip(), ...RELEASE]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const inv = parseInventoryText(r.stdout, 'imported');
    expect(inv.nodes.map((n) => [n.name, n.roles.join(',')])).toEqual([
      ['control01', 'controller,api'],
      ['control02', 'api'],
      ['control03', 'api'],
      ['compute01', 'compute'],
      ['network01', 'lb'],
      ['network02', 'lb'],
    ]);
    expect(inv.vip.url).toBe('http://10.10.10.254:8774');
    expect(inv.haproxy.backend).toBe('nova_api_back');
    expect(drainedServices(inv).map((d) => `${d.node}/${d.unit}/${d.server}`)).toEqual([
      'control01/nova_api/control01',
      'control02/nova_api/control02',
      'control03/nova_api/control03',
    ]);
    expect(
      inPlaceRestarts(inv)
        .filter((s) => s.node === 'control01')
        .map((s) => s.unit),
    ).toEqual(['nova_super_conductor', 'nova_conductor', 'nova_scheduler', 'nova_metadata', 'nova_novncproxy']);
    // Every value the files do not hold carries its reason on its line or above its block.
    expect(r.stdout).toContain('address: control01 # ASSUMED: the inventory name, which must resolve from the worker');
    expect(r.stdout).toContain('osCloud: kolla-admin # ASSUMED:');
    expect(r.stdout).toMatch(
      /# ASSUMED: kolla serves this socket at level admin only with haproxy_socket_level_admin: true/,
    );
    for (const line of r.stdout
      .split('\n')
      .filter((l) => /^\s+(address|haproxyServer|url|backend|osCloud|cloud): /.test(l)))
      expect(line).toContain('# ASSUMED:');
    expect(r.stdout.split('\n')[0]).toBe(
      `# Imported by nova-upgrade from kolla-ansible: ${MULTINODE}, ${join(work, 'globals.yml')}.`,
    );
  });

  it("takes the range and user from the multinode file's own commented example", async () => {
    const ranged = written(
      'multinode-ranged',
      fixture(MULTINODE)
        .replace(/^control01\ncontrol02\ncontrol03\n/m, '')
        .replace(/^#control\[01:03\]\s+ansible_user=kolla$/m, 'control[01:03]     ansible_user=kolla'),
    );
    expect(readFileSync(ranged, 'utf8')).toMatch(
      /^\[control\]\n# These hostname must be resolvable from your deployment host\n\n# The above can also be specified as follows:\ncontrol\[01:03\]     ansible_user=kolla$/m,
    );
    const r = await runCli(['inventory', 'import', '--from', 'kolla-ansible', ranged, globalsWithVip(), ...RELEASE]);
    expect(r.code).toBe(0);
    const inv = parseInventoryText(r.stdout, 'imported');
    expect(inv.nodes.filter((n) => n.sshUser === 'kolla').map((n) => n.name)).toEqual([
      'control01',
      'control02',
      'control03',
    ]);
    expect(inv.nodes.find((n) => n.name === 'compute01')!.sshUser).toBe('root');
  });

  it('refuses without the release, which none of the files hold', async () => {
    const r = await runCli(['inventory', 'import', '--from', 'kolla-ansible', MULTINODE, globalsWithVip()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      "nova-upgrade: cannot import: nova's release is in none of these files: pass --release-from and --release-to with nova's versions, e.g. 30.0.0 and 31.0.0\n",
    );
  });
});

describe('nova-upgrade inventory import --from openstack-ansible', () => {
  it("refuses OpenStack-Ansible's example as it ships: every line of it is a comment", async () => {
    const r = await runCli(['inventory', 'import', '--from', 'openstack-ansible', OSA, ...RELEASE]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `nova-upgrade: cannot import: ${OSA}: holds no host groups: every line of it is a comment (OpenStack-Ansible's example documents each level in comments; copy the levels your cloud has and uncomment them)\n`,
    );
  });

  it("refuses nova in LXC containers, OpenStack-Ansible's default, naming the hosts", async () => {
    const config = written('openstack_user_config.yml', osaExamplesUncommented());
    const r = await runCli(['inventory', 'import', '--from', 'openstack-ansible', config, ...RELEASE]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `nova-upgrade: cannot import: ${config}: OpenStack-Ansible runs nova-api, nova-conductor and nova-scheduler in LXC containers on infra1, infra2, infra3 by default, ` +
        'and nova-upgrade cannot yet run commands inside LXC containers: if nova runs on the hosts themselves (is_metal), pass --nova-on-metal, or give openstack_inventory.json to show it\n',
    );
  });

  it('maps the example levels when nova runs on metal, one node per machine', async () => {
    const config = written('openstack_user_config.yml', osaExamplesUncommented());
    const noVip = await runCli([
      'inventory',
      'import',
      '--from',
      'openstack-ansible',
      config,
      '--nova-on-metal',
      ...RELEASE,
    ]);
    expect(noVip.stderr).toBe(
      `nova-upgrade: cannot import: ${config}: global_overrides.internal_lb_vip_address is not set: set it, or pass --vip\n`,
    );
    const r = await runCli([
      'inventory',
      'import',
      '--from',
      'openstack-ansible',
      config,
      '--nova-on-metal',
      '--vip',
      '172.29.236.9',
      ...RELEASE,
    ]);
    expect(r.stderr).toBe('');
    const inv = parseInventoryText(r.stdout, 'imported');
    expect(inv.nodes.map((n) => [n.name, n.address, n.roles.join(',')])).toEqual([
      ['infra1', '172.29.236.101', 'controller,api,lb'],
      ['infra2', '172.29.236.102', 'api'],
      ['infra3', '172.29.236.103', 'api'],
      ['compute1', '172.29.236.121', 'compute'],
      ['lb1', '172.29.236.100', 'lb'],
    ]);
    expect(r.stdout).toContain('name: infra1 # ASSUMED: also listed as lb2, with the same ip: one machine');
    expect(inv.nodes[0]!.services.map((s) => s.unit)).toContain('nova-api-os-compute');
  });

  it('reads openstack_inventory.json to tell containers from metal', async () => {
    const config = written('openstack_user_config.yml', osaExamplesUncommented());
    const generated = (hosts: string[]) =>
      written(
        'openstack_inventory.json',
        JSON.stringify({
          _meta: {
            hostvars: Object.fromEntries(
              hosts.map((h) => [h, { physical_host: h.split('_')[0], ansible_host: '172.29.238.5' }]),
            ),
          },
          nova_api_os_compute: { hosts },
        }),
      );
    const lxc = await runCli([
      'inventory',
      'import',
      '--from',
      'openstack-ansible',
      config,
      generated(['infra1_nova_api_container-1a2b3c4d', 'infra2_nova_api_container-5e6f7a8b']),
      '--vip',
      '172.29.236.9',
      ...RELEASE,
    ]);
    expect(lxc.stderr).toContain(
      'nova-api runs in LXC containers (infra1_nova_api_container-1a2b3c4d, infra2_nova_api_container-5e6f7a8b)',
    );
    const metal = await runCli([
      'inventory',
      'import',
      '--from',
      'openstack-ansible',
      config,
      generated(['infra1', 'infra2', 'infra3']),
      '--vip',
      '172.29.236.9',
      ...RELEASE,
    ]);
    expect(metal.code).toBe(0);
    expect(metal.stdout).toContain('as openstack_inventory.json shows');
  });
});

describe('nova-upgrade inventory import --from ansible', () => {
  it('maps roles from conventional group names in a YAML inventory', async () => {
    const file = written(
      'hosts.yml',
      `all:
  vars:
    ansible_user: ops
  children:
    nova_conductor:
      hosts:
        ctl1: { ansible_host: 10.0.0.11 }
    nova_api:
      hosts:
        ctl1:
        api[2:3]: { ansible_port: 2222 }
    compute:
      hosts:
        cmp[01:02]:
    haproxy:
      hosts:
        ctl1:
`,
    );
    const r = await runCli(['inventory', 'import', '--from', 'ansible', file, '--vip', '10.0.0.100', ...RELEASE]);
    expect(r.stderr).toBe('');
    const inv = parseInventoryText(r.stdout, 'imported');
    expect(inv.nodes.map((n) => [n.name, n.address, n.sshUser, n.sshPort, n.roles.join(',')])).toEqual([
      ['ctl1', '10.0.0.11', 'ops', 22, 'controller,api,lb'],
      ['api2', 'api2', 'ops', 2222, 'api'],
      ['api3', 'api3', 'ops', 2222, 'api'],
      ['cmp01', 'cmp01', 'ops', 22, 'compute'],
      ['cmp02', 'cmp02', 'ops', 22, 'compute'],
    ]);
    expect(inv.vip.url).toBe('http://10.0.0.100:8774');
  });

  it('takes groups the operator names, and refuses a role no group gives', async () => {
    const file = written('hosts.ini', '[webheads]\nw1\nw2\n[brains]\nb1\n[hypervisors]\nh1\n');
    const missing = await runCli([
      'inventory',
      'import',
      '--from',
      'ansible',
      file,
      '--vip',
      '10.0.0.100',
      '--group',
      'api=webheads',
      '--group',
      'controller=brains',
      ...RELEASE,
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      `nova-upgrade: cannot import: ${file}: no group gives the lb role (looked for haproxy, loadbalancer, load_balancer, lb, lbs): name one with --group lb=<group>\n`,
    );
    const r = await runCli([
      'inventory',
      'import',
      '--from',
      'ansible',
      file,
      '--vip',
      '10.0.0.100',
      '--group',
      'api=webheads',
      '--group',
      'controller=brains',
      '--group',
      'lb=brains',
      '--group',
      'compute=hypervisors',
      ...RELEASE,
    ]);
    expect(r.code).toBe(0);
    expect(parseInventoryText(r.stdout, 'imported').nodes.map((n) => `${n.name}:${n.roles.join(',')}`)).toEqual([
      'b1:controller,lb',
      'w1:api',
      'w2:api',
      'h1:compute',
    ]);
  });
});
