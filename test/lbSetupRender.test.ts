// Rendered configs against the real HAProxy 2.6 parser, and bad inventories refused by name.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { InventoryError, validateInventory } from '../inventory/load';
import { renderLoadBalancers, trackWeight } from '../common/lbRender';

const dir = mkdtempSync(join(tmpdir(), 'lb-render-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Raw = Record<string, any>;
// A state file holding only its version line, as install leaves it before HAProxy's first start;
// without one `haproxy -c` warns that it cannot open it.
const serverState = join(dir, 'server-state');
writeFileSync(serverState, '1\n');
const seed = (): Raw => ({ ...(parse(readFileSync('examples/seed-two-node.yaml', 'utf8')) as Raw), loadBalancer: {} });
const checked = (raw: Raw): Raw => ({ ...raw, loadBalancer: { ...raw.loadBalancer, files: { serverState } } });

function threeApiNodes(): Raw {
  const raw = seed();
  raw.nodes.push({
    name: 'api3',
    address: '192.168.0.90',
    roles: ['api', 'lb'],
    lb: { socket: { via: 'ssh', path: '/run/haproxy/admin.sock', sudo: true } },
  });
  raw.loadBalancer = {
    interface: 'ens3',
    virtualRouterId: 51,
    healthCheck: { path: '/healthcheck', intervalSeconds: 1 },
  };
  return raw;
}

function haproxyCheck(name: string, content: string): { code: number; out: string } {
  const path = join(dir, name);
  writeFileSync(path, content);
  const r = spawnSync('haproxy', ['-c', '-f', path], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function problemsOf(raw: unknown): string[] {
  try {
    validateInventory(raw, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(InventoryError);
    return (err as InventoryError).problems;
  }
  throw new Error('the inventory was accepted');
}

describe('lb setup renderers', () => {
  for (const [label, make] of [
    ['the seed-like 2-LB inventory', seed],
    ['a 3-API-node, 3-LB inventory', threeApiNodes],
  ] as const) {
    it(`renders configs haproxy -c accepts without a warning for ${label}`, () => {
      const configs = renderLoadBalancers(validateInventory(checked(make())));
      for (const c of configs) {
        const haproxy = c.files.find((f) => f.kind === 'haproxy')!;
        const r = haproxyCheck(`${label.length}-${c.node}.cfg`, haproxy.content);
        expect(r.out).toContain('Configuration file is valid');
        expect(r.code).toBe(0);
        expect(r.out).not.toMatch(/WARNING/);
      }
    });
  }

  it('keeps the seed settings and carries its fixes', () => {
    const [backup, master] = renderLoadBalancers(validateInventory(seed()));
    expect([backup!.node, master!.node]).toEqual(['apicomp', 'controller']);
    const cfg = master!.files.find((f) => f.kind === 'haproxy')!.content;
    for (const line of [
      'stats socket /var/run/haproxy.sock mode 600 level admin',
      'option redispatch',
      'retries 3',
      'balance roundrobin',
      'timeout connect 10s',
      'bind 192.168.0.95:8282',
      'server controller 192.168.0.88:8774 check',
      'server apicomp 192.168.0.89:8774 check',
    ]) {
      expect(cfg).toContain(line);
    }
    expect(cfg).toContain('option httplog');
    expect(cfg).not.toContain('tcplog');
    expect(cfg).toMatch(/option httpchk GET \/\n\s+http-check expect status 200/);
    expect(cfg).toMatch(/server-state-file \/var\/lib\/haproxy\/server-state[\s\S]*load-server-state-from-file global/);
    const ka = master!.files.find((f) => f.kind === 'keepalived')!.content;
    expect(ka).toContain('priority 101');
    expect(ka).toContain('state MASTER');
    expect(backup!.files.find((f) => f.kind === 'keepalived')!.content).toMatch(/state BACKUP[\s\S]*priority 100/);
    expect(ka).toContain('script "/usr/bin/pgrep -F /run/haproxy.pid haproxy"');
    expect(ka).not.toContain('killall');
    expect(ka).toContain('192.168.0.95/32 dev eth0');
    expect(master!.files.find((f) => f.kind === 'sysctl')!.content).toContain('net.ipv4.ip_nonlocal_bind = 1');
  });

  it('gives three LBs descending priorities and a track weight that outranks any dead HAProxy', () => {
    const inv = validateInventory(threeApiNodes());
    expect(inv.loadBalancer!.members.map((m) => [m.node, m.priority])).toEqual([
      ['controller', 101],
      ['apicomp', 100],
      ['api3', 99],
    ]);
    expect(trackWeight(inv.loadBalancer!)).toBe(3);
    const cfg = renderLoadBalancers(inv)[0]!.files[0]!.content;
    expect(cfg).toContain('server api3 192.168.0.90:8774 check');
    expect(cfg).toContain('option httpchk GET /healthcheck');
    expect(cfg).toContain('stats socket /run/haproxy/admin.sock mode 600 level admin');
  });
});

describe('lb setup refuses a bad inventory with a sentence naming it', () => {
  it('refuses a duplicate server address', () => {
    const raw = seed();
    raw.nodes[1].api = { url: 'http://192.168.0.88:8774' };
    expect(problemsOf(raw)).toContain(
      'nodes[1] (apicomp).api.url: 192.168.0.88:8774 is already the address of HAProxy server "controller" (nodes[0] (controller)); each server needs its own address',
    );
  });

  it('refuses a duplicate server name', () => {
    const raw = seed();
    raw.nodes[1].api = { haproxyServer: 'controller' };
    expect(problemsOf(raw)).toContainEqual(
      expect.stringContaining(
        'nodes[1] (apicomp).api.haproxyServer: server "controller" is already used by nodes[0] (controller)',
      ),
    );
  });

  it('refuses a bad port', () => {
    const raw = seed();
    raw.loadBalancer = { frontendPort: 70000 };
    expect(problemsOf(raw)).toContain('loadBalancer.frontendPort: must be a TCP port, 1 to 65535');
    const api = seed();
    api.nodes[0].api = { url: 'http://192.168.0.88:0' };
    expect(problemsOf(api)).toContain('nodes[0] (controller).api.url: port 0 is not a TCP port, 1 to 65535');
  });

  it('refuses equal priorities', () => {
    const raw = seed();
    raw.nodes[1].lb.priority = 101;
    expect(problemsOf(raw)).toEqual([
      "nodes[1] (apicomp).lb.priority: 101 is already the keepalived priority of nodes[0] (controller); equal priorities leave the VIP's owner to chance",
    ]);
  });

  it('refuses an interface name that would end up as text in keepalived.conf', () => {
    const raw = seed();
    raw.nodes[0].lb.interface = 'eth0; rm -rf /';
    expect(problemsOf(raw)).toEqual([
      expect.stringMatching(/^nodes\[0\] \(controller\)\.lb\.interface: must be a network interface name/),
    ]);
  });

  it('refuses a VIP host name unless vipAddress is given', () => {
    const raw = seed();
    raw.vip.url = 'http://nova-api.example.com:8282';
    expect(problemsOf(raw)).toEqual([
      'vip.url: host "nova-api.example.com" is not an IPv4 address, so keepalived cannot hold it; set loadBalancer.vipAddress',
    ]);
    raw.loadBalancer = { vipAddress: '192.168.0.95' };
    expect(validateInventory(raw).loadBalancer!.vipAddress).toBe('192.168.0.95');
  });

  it('leaves an inventory without the section exactly as before', () => {
    const raw = seed();
    delete raw.loadBalancer;
    raw.nodes[1].api = { url: 'http://192.168.0.88:8774' };
    const inv = validateInventory(raw);
    expect(inv.loadBalancer).toBeUndefined();
    expect(inv.nodes[0]!.lb).toEqual({ socket: { via: 'ssh', path: '/var/run/haproxy.sock', sudo: true } });
  });
});
