import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { InventoryError, loadInventory, validateInventory } from '../inventory/load';
import { computeBatches } from '../common/topology';
import { plannedSteps as planUpgrade } from '../workflows/runbook';

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
    expect(problems).toContainEqual(expect.stringContaining('nodes[1] (apicomp).api.haproxyServer: server "controller" is already used by nodes[0] (controller)'));
  });

  it('refuses a server name that could smuggle a second runtime command', () => {
    const raw = seed();
    raw.nodes[0].api = { haproxyServer: 'controller;disable server nova-api/apicomp' };
    expect(problemsOf(raw)).toContainEqual(expect.stringMatching(/^nodes\[0\] \(controller\)\.api\.haproxyServer: must be a valid HAProxy name/));
  });

  it('refuses a command template with an unknown placeholder', () => {
    const raw = seed();
    raw.commands = { serviceRestart: 'sudo systemctl restart {unitt}' };
    expect(problemsOf(raw)).toEqual(['commands.serviceRestart: unknown placeholder {unitt}; this template may use {unit}, {node}']);
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
    expect(problems).toContainEqual('nodes: a zero-downtime upgrade needs at least two nodes with the api role (found 1)');
    expect(problems).toContainEqual('nodes: at least one node must have the lb role (the HAProxy in front of nova-api)');
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
    expect(problemsOf(raw)).toEqual(['compute.exclude[0]: "cmp9" is neither a compute node nor a nova host in this inventory']);
  });

  it('plans every runbook step once, conductors before other services, and renders commands', () => {
    const inv = loadInventory('examples/seed-two-node.yaml');
    const steps = planUpgrade(inv);
    const ids = steps.map((s) => s.id);
    expect(new Set(ids).size).toBe(ids.length);
    const restarts = ids.filter((i) => i.startsWith('restart:controller:') && !i.endsWith('n-api'));
    expect(restarts[0]).toBe('restart:controller:devstack@n-super-cond');
    expect(restarts[1]).toBe('restart:controller:devstack@n-cond-cell1');
    expect(ids.indexOf('upgrade-placement')).toBeLessThan(ids.indexOf('upgrade-check'));
    expect(ids.indexOf('compute-batch:2')).toBeLessThan(ids.indexOf('drain:controller'));
    const drain = steps.find((s) => s.id === 'drain:apicomp')!;
    expect(drain.commands).toEqual([
      { node: 'controller', command: "echo 'set server nova-api/apicomp weight 0' | sudo socat /var/run/haproxy.sock stdio" },
      { node: 'apicomp', command: "echo 'set server nova-api/apicomp weight 0' | sudo socat /var/run/haproxy.sock stdio" },
    ]);
    const disable = steps.find((s) => s.id === 'compute-batch:1')!.commands[0]!.command;
    expect(disable).toBe("OS_CLOUD=devstack-admin openstack compute service set --disable --disable-reason 'nova-upgrade to 31.0.0 (batch 1/2)' controller nova-compute");
  });
});
