import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { InventoryError, loadInventory, validateInventory } from '../inventory/load';
import { computeBatches } from '../common/topology';
import { planUpgrade as planWithOptions, plannedSteps as planUpgrade } from '../workflows/runbook';
import { labInventory } from '../lab/labInventory';
import { planTopology } from '../lab/topology';

// Raw YAML, edited freely to build bad inputs: its shape is what the schema under test checks.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const seed = () => parse(readFileSync('examples/seed-two-node.yaml', 'utf8')) as Record<string, any>;

function problemsOf(raw: unknown): string[] {
  try {
    validateInventory(raw, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(InventoryError);
    return (err as InventoryError).problems;
  }
  throw new Error('the inventory was accepted');
}

describe('inventory', () => {
  it('accepts the seed topology and fills in devstack defaults', () => {
    const inv = loadInventory('examples/seed-two-node.yaml');
    expect(inv.controller).toBe('controller');
    const apicomp = inv.nodes.find((n) => n.name === 'apicomp')!;
    expect(apicomp.services.map((s) => s.unit)).toEqual(['devstack@n-api', 'devstack@n-cpu']);
    expect(apicomp.api).toEqual({ haproxyServer: 'apicomp', url: 'http://192.168.0.89:8774' });
    expect(inv.vip.computeEndpointUrl).toBe('http://192.168.0.95:8282/v2.1');
    expect(inv.cells.map((c) => c.name)).toEqual(['cell0', 'cell1']);
  });

  it('names the field and the node of each problem', () => {
    const raw = seed();
    raw.nodes[1].address = '';
    raw.nodes[1].roles = ['api', 'frontend'];
    const problems = problemsOf(raw);
    expect(problems).toContainEqual(expect.stringMatching(/^nodes\[1\] \(apicomp\)\.address: /));
    expect(problems).toContainEqual(expect.stringMatching(/^nodes\[1\] \(apicomp\)\.roles\[1\]: /));
  });

  it('refuses a duplicate node and a duplicate HAProxy server', () => {
    const raw = seed();
    raw.nodes[1].api = { haproxyServer: 'controller' };
    raw.nodes.push({ ...raw.nodes[0], address: '192.168.0.90' });
    const problems = problemsOf(raw);
    expect(problems).toContainEqual('nodes[2] (controller).name: "controller" is already used by nodes[0]');
    expect(problems).toContainEqual(
      expect.stringContaining(
        'nodes[1] (apicomp).api.haproxyServer: server "controller" is already used by nodes[0] (controller)',
      ),
    );
  });

  it('refuses a server name that could smuggle a second runtime command', () => {
    const raw = seed();
    raw.nodes[0].api = { haproxyServer: 'controller;disable server nova-api/apicomp' };
    expect(problemsOf(raw)).toContainEqual(
      expect.stringMatching(/^nodes\[0\] \(controller\)\.api\.haproxyServer: must be a valid HAProxy name/),
    );
  });

  it('refuses a command template with an unknown placeholder', () => {
    const raw = seed();
    raw.commands = { serviceRestart: 'sudo systemctl restart {unitt}' };
    expect(problemsOf(raw)).toEqual([
      'commands.serviceRestart: unknown placeholder {unitt}; this template may use {unit}, {node}',
    ]);
  });

  it('refuses secrets inline: only key paths are fields', () => {
    const raw = seed();
    raw.ssh.privateKey = '-----BEGIN OPENSSH PRIVATE KEY-----';
    expect(problemsOf(raw)).toContainEqual('ssh: unknown field "privateKey"');
  });

  it('needs two API nodes and an LB for a zero-downtime upgrade', () => {
    const raw = seed();
    raw.nodes[1].roles = ['compute'];
    delete raw.nodes[1].lb;
    raw.nodes[0].roles = ['controller', 'api', 'compute'];
    delete raw.nodes[0].lb;
    const problems = problemsOf(raw);
    expect(problems).toContainEqual(
      'nodes: a zero-downtime upgrade needs at least two nodes with the api role (found 1)',
    );
    expect(problems).toContainEqual(
      'nodes: at least one node must have the lb role (the HAProxy in front of nova-api)',
    );
  });

  it('reports YAML syntax errors with a line number, and a missing file by name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'inv-'));
    writeFileSync(join(dir, 'bad.yaml'), 'cloud: lab\nnodes:\n  - name: a\n   address: [unclosed\n');
    expect(() => loadInventory(join(dir, 'bad.yaml'))).toThrow(/YAML syntax \(line \d+\)/);
    expect(() => loadInventory('/nonexistent.yaml')).toThrow(/\/nonexistent.yaml: [^]*cannot read the file: ENOENT/);
  });

  it('leaves excluded hosts out of the compute batches and batches the rest by size', () => {
    const raw = seed();
    raw.nodes.push(...[1, 2, 3].map((i) => ({ name: `cmp${i}`, address: `192.168.0.${100 + i}`, roles: ['compute'] })));
    raw.compute = { batchSize: 2, exclude: ['cmp2'] };
    const batches = computeBatches(validateInventory(raw));
    expect(batches).toEqual([
      { index: 1, nodes: ['controller', 'apicomp'] },
      { index: 2, nodes: ['cmp1', 'cmp3'] },
    ]);
    raw.compute.exclude = ['cmp9'];
    expect(problemsOf(raw)).toEqual([
      'compute.exclude[0]: "cmp9" is neither a compute node nor a nova host in this inventory',
    ]);
  });

  it('plans every runbook step once, conductors before other services, and renders commands', () => {
    const inv = loadInventory('examples/seed-two-node.yaml');
    // The seed's literal order; the default monotonic switch-over drains apicomp in the switch-over.
    inv.haproxy.switchover = 'rolling';
    const steps = planUpgrade(inv);
    const ids = steps.map((s) => s.id);
    expect(new Set(ids).size).toBe(ids.length);
    inv.haproxy.switchover = 'monotonic';
    const monotonic = planUpgrade(inv).map((s) => s.id);
    expect(monotonic).toContain('switch-over');
    expect(monotonic).not.toContain('drain:apicomp');
    // Every conductor at once, then the other control services at once; nova-api is not among them.
    const units = (id: string) => steps.find((s) => s.id === id)!.commands.map((c) => c.command.split(' ').pop());
    expect(ids.indexOf('restart-conductors')).toBeLessThan(ids.indexOf('restart-control-services'));
    expect(ids.indexOf('upgrade-check')).toBeLessThan(ids.indexOf('restart-conductors'));
    expect(units('restart-conductors')).toEqual(['devstack@n-super-cond', 'devstack@n-cond-cell1']);
    expect(units('restart-control-services')).toEqual([
      'devstack@n-sch',
      'devstack@n-api-meta',
      'devstack@n-novnc-cell1',
    ]);
    // A run started before restarts-at-once keeps one step per service, conductors first.
    const before = planWithOptions(inv, { computeHupInBatches: true, restartsAtOnce: false }).map((s) => s.id);
    const restarts = before.filter((i) => i.startsWith('restart:controller:') && !i.endsWith('n-api'));
    expect(restarts[0]).toBe('restart:controller:devstack@n-super-cond');
    expect(restarts[1]).toBe('restart:controller:devstack@n-cond-cell1');
    expect(before).not.toContain('restart-conductors');
    expect(ids.indexOf('upgrade-placement')).toBeLessThan(ids.indexOf('upgrade-check'));
    expect(ids.indexOf('compute-batch:2')).toBeLessThan(ids.indexOf('drain:controller'));
    const drain = steps.find((s) => s.id === 'drain:apicomp')!;
    expect(drain.commands).toEqual([
      {
        node: 'controller',
        command: "echo 'set server nova-api/apicomp weight 0' | sudo socat /var/run/haproxy.sock stdio",
      },
      {
        node: 'apicomp',
        command: "echo 'set server nova-api/apicomp weight 0' | sudo socat /var/run/haproxy.sock stdio",
      },
    ]);
    const disable = steps.find((s) => s.id === 'compute-batch:1')!.commands[0]!.command;
    expect(disable).toBe(
      "OS_CLOUD=devstack-admin openstack compute service set --disable --disable-reason 'nova-upgrade to 31.0.0 (batch 1/2)' controller nova-compute",
    );
  });

  it('refuses a downgrade, naming release.to', () => {
    const raw = seed();
    raw.release = { from: '30.0.0', to: '29.0.0' };
    expect(problemsOf(raw)).toEqual([
      'release.to: 29.0.0 is older than release.from 30.0.0, and nova cannot be downgraded (its databases have no downgrade migrations)',
    ]);
  });

  it('refuses an equal release', () => {
    const raw = seed();
    raw.release = { from: '31.0.0', to: '31.0.0' };
    expect(problemsOf(raw)).toEqual([
      'release.to: 31.0.0 is the same release as release.from, so there is nothing to upgrade',
    ]);
  });

  it('refuses a jump nova does not support, and one outside the release model', () => {
    const raw = seed();
    raw.release = { from: '30.0.0', to: '32.0.0' };
    expect(problemsOf(raw)).toEqual([
      'release.to: 30.0.0 → 32.0.0 skips 2025.1 Epoxy, but nova skips a release only from one SLURP release to the next, and 2024.2 Dalmatian and 2025.2 Flamingo are not SLURP releases; upgrade through 31.x (2025.1 Epoxy) first',
    ]);
    raw.release = { from: '29.0.0', to: '32.0.0' };
    expect(problemsOf(raw)).toEqual([
      'release.to: 29.0.0 → 32.0.0 skips 2024.2 Dalmatian and 2025.1 Epoxy, but nova supports N+1, or N+2 from one SLURP release to the next; upgrade through 31.x (2025.1 Epoxy) first',
    ]);
    raw.release = { from: '20.0.0', to: '21.0.0' };
    expect(problemsOf(raw)).toEqual([
      "release.from: nova 20.x is not in this tool's release model, which knows 27.x (2023.1 Antelope) to 34.x (2026.2 Hibiscus)",
    ]);
  });

  it('accepts N+1, a SLURP-to-SLURP skip and a stable update', () => {
    for (const release of [
      { from: '30.0.0', to: '31.0.0' },
      { from: '31.0.0', to: '33.0.0' },
      { from: '33.0.2', to: '34.0.0' },
      { from: '31.0.0', to: '31.3.1' },
    ]) {
      const raw = seed();
      raw.release = release;
      expect(validateInventory(raw).release).toEqual(release);
    }
  });

  it('reports a bad release pair together with the other schema problems', () => {
    const raw = seed();
    raw.release = { from: '30.0.0', to: '29.0.0' };
    raw.nodes[1].address = '192.168.0.999';
    expect(problemsOf(raw)).toEqual([
      'release.to: 29.0.0 is older than release.from 30.0.0, and nova cannot be downgraded (its databases have no downgrade migrations)',
      'nodes[1] (apicomp).address: "192.168.0.999" is not an IPv4 address (four numbers from 0 to 255, without leading zeros) and, being all digits, cannot be a hostname',
    ]);
  });

  it('refuses an address that is neither an IPv4 or IPv6 address nor a hostname', () => {
    const cases: Array<[string, string]> = [
      [
        '192.168.0.999',
        '"192.168.0.999" is not an IPv4 address (four numbers from 0 to 255, without leading zeros) and, being all digits, cannot be a hostname',
      ],
      [
        '10.0.0',
        '"10.0.0" is not an IPv4 address (four numbers from 0 to 255, without leading zeros) and, being all digits, cannot be a hostname',
      ],
      [
        'api comp.example.org',
        '"api comp.example.org" is not an IPv4 address, an IPv6 address or a hostname (letters, digits and "-" in labels separated by dots)',
      ],
      [
        'apicomp_1',
        '"apicomp_1" is not an IPv4 address, an IPv6 address or a hostname (letters, digits and "-" in labels separated by dots)',
      ],
      [
        '2001:db8:::1',
        '"2001:db8:::1" is not an IPv4 address, an IPv6 address or a hostname (letters, digits and "-" in labels separated by dots)',
      ],
      ['[fd00::89]', '"[fd00::89]" has brackets; write the IPv6 address without them'],
    ];
    for (const [address, message] of cases) {
      const raw = seed();
      raw.nodes[1].address = address;
      expect(problemsOf(raw), address).toEqual([`nodes[1] (apicomp).address: ${message}`]);
    }
    const raw = seed();
    raw.nodes[1].address = '';
    expect(problemsOf(raw)).toEqual(['nodes[1] (apicomp).address: must not be empty']);
  });

  it('accepts IPv4 and IPv6 addresses and hostnames, and brackets an IPv6 address in the default API URL', () => {
    for (const address of [
      '192.168.0.89',
      'fd00::89',
      'apicomp',
      'apicomp.cloud.example.org',
      'apicomp.cloud.example.org.',
      'cmp-01.rack3',
    ]) {
      const raw = seed();
      raw.nodes[1].address = address;
      expect(validateInventory(raw).nodes[1]!.address, address).toBe(address);
    }
    const raw = seed();
    raw.nodes[1].address = 'fd00::89';
    expect(validateInventory(raw).nodes[1]!.api!.url).toBe('http://[fd00::89]:8774');
  });

  it("the lab's own inventory, at its default releases, still loads", () => {
    const topology = planTopology({ subnet: '127.0.1', apiNodes: 2, computeOnlyNodes: 1, lbNodes: 1, sshPort: 2222 });
    const inv = validateInventory(
      labInventory({ stateDir: '/tmp/lab', fromVersion: '30.0.0', toVersion: '31.0.0', sshPort: 2222, ...topology }),
    );
    expect(inv.release).toEqual({ from: '30.0.0', to: '31.0.0' });
    expect(inv.nodes.map((n) => n.address)).toEqual(['127.0.1.2', '127.0.1.3', '127.0.1.4']);
  });
});
