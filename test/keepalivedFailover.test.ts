// A real keepalived failover with the configs `lb setup` renders: Debian's keepalived 2.2.7 and
// HAProxy 2.6 in two network namespaces joined by a veth pair, VRRP between them. Each step
// measures how long the VIP takes to reach the backup and prints it.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateInventory } from '../inventory/load';
import { renderLoadBalancers } from '../common/lbRender';
import { createNetnsPair, holdersOf, inNetns, spawnInNetns, type NetnsHost, type NetnsPair } from './helpers/netns';

const SUBNET = '10.250.62';
const VIP = `${SUBNET}.100`;
const root = mkdtempSync(join(tmpdir(), 'keepalived-failover-'));
let pair: NetnsPair;
let master: NetnsHost;
let backup: NetnsHost;
const keepalived = new Map<string, ChildProcess>();
const names = ['controller', 'apicomp'] as const;
const dirOf = (name: string) => join(root, name);

function files(name: string) {
  return {
    haproxyConfig: join(dirOf(name), 'haproxy.cfg'),
    keepalivedConfig: join(dirOf(name), 'keepalived.conf'),
    serverState: join(dirOf(name), 'server-state'),
    haproxyPid: join(dirOf(name), 'haproxy.pid'),
    sysctl: join(dirOf(name), 'sysctl.conf'),
  };
}

function startKeepalived(host: NetnsHost, name: string): void {
  const d = dirOf(name);
  // -n: in the foreground, so the test holds the parent; -P: VRRP only, no IPVS checker.
  const child = spawnInNetns(pair, host.ns, 'keepalived', [
    '-n',
    '-P',
    '-f',
    files(name).keepalivedConfig,
    '-p',
    join(d, 'keepalived.pid'),
    '-r',
    join(d, 'vrrp.pid'),
    '-c',
    join(d, 'checkers.pid'),
  ]);
  keepalived.set(name, child);
}

function startHaproxy(host: NetnsHost, name: string): void {
  inNetns(host.ns, 'haproxy', '-D', '-f', files(name).haproxyConfig, '-p', files(name).haproxyPid);
}

const pidIn = (path: string) => Number(readFileSync(path, 'utf8').trim());

/** Polls every 20 ms until `ns` holds the VIP; returns the time it took. */
async function timeUntilHeldBy(ns: string, timeoutMs: number, since = Date.now()): Promise<number> {
  for (;;) {
    if (holdersOf(pair.hosts, VIP).includes(ns)) return Date.now() - since;
    if (Date.now() - since > timeoutMs)
      throw new Error(
        `${ns} did not take VIP ${VIP} within ${timeoutMs} ms (holders: ${holdersOf(pair.hosts, VIP).join(', ') || 'none'})`,
      );
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  pair = createNetnsPair(`kaf${process.pid % 100000}`, SUBNET);
  [master, backup] = pair.hosts;
  const raw = {
    cloud: 'failover',
    release: { from: '30.0.0', to: '31.0.0' },
    ssh: { user: 'root', privateKeyPath: '/nonexistent', knownHostsPath: '/nonexistent' },
    vip: { url: `http://${VIP}:8282` },
    loadBalancer: { interface: master.iface },
    nodes: names.map((name, i) => ({
      name,
      address: pair.hosts[i]!.address,
      roles: i === 0 ? ['controller', 'api', 'lb'] : ['api', 'lb'],
      lb: { socket: { via: 'ssh', path: join(dirOf(name), 'haproxy.sock'), sudo: false }, files: files(name) },
    })),
  };
  for (const c of renderLoadBalancers(validateInventory(raw, 'failover inventory'))) {
    mkdirSync(dirOf(c.node), { recursive: true });
    for (const f of c.files) writeFileSync(f.path, f.content);
    writeFileSync(files(c.node).serverState, '1\n');
  }
  names.forEach((name, i) => {
    const host = pair.hosts[i]!;
    // keepalived's own check of the rendered file, in the namespace whose interface it names.
    inNetns(host.ns, 'keepalived', '-t', '-f', files(name).keepalivedConfig);
    inNetns(host.ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_nonlocal_bind=1');
    startHaproxy(host, name);
    startKeepalived(host, name);
  });
  await timeUntilHeldBy(master.ns, 10_000);
}, 30_000);

afterAll(() => {
  pair?.destroy();
  rmSync(root, { recursive: true, force: true });
});

describe('keepalived failover between two network namespaces', () => {
  it('starts with the VIP on the priority-101 node only', () => {
    expect(holdersOf(pair.hosts, VIP)).toEqual([master.ns]);
    expect(readFileSync(files('controller').keepalivedConfig, 'utf8')).toContain('priority 101');
  });

  it("moves the VIP when this node's HAProxy dies, though the other node's still runs", async () => {
    // The other namespace's HAProxy shares this PID namespace: `killall -0 haproxy` would pass.
    process.kill(pidIn(files('controller').haproxyPid), 'SIGTERM');
    const ms = await timeUntilHeldBy(backup.ns, 8_000);
    console.log(`VIP to the backup after the master's HAProxy died: ${ms} ms (track script interval 2 s)`);
    expect(holdersOf(pair.hosts, VIP)).toEqual([backup.ns]);
    startHaproxy(master, 'controller');
    console.log(`VIP back on the master after its HAProxy restarted: ${await timeUntilHeldBy(master.ns, 8_000)} ms`);
  });

  it('moves the VIP within 2 s of a graceful stop of the master (priority-0 advert)', async () => {
    const since = Date.now();
    keepalived.get('controller')!.kill('SIGTERM');
    const ms = await timeUntilHeldBy(backup.ns, 5_000, since);
    console.log(`VIP to the backup after a graceful stop: ${ms} ms`);
    expect(ms).toBeLessThan(2_000);
    await new Promise((r) => keepalived.get('controller')!.once('exit', r));
    expect(holdersOf(pair.hosts, VIP)).toEqual([backup.ns]);

    startKeepalived(master, 'controller');
    console.log(`VIP back on the restarted master (preemption): ${await timeUntilHeldBy(master.ns, 10_000)} ms`);
  });

  it('moves the VIP within 5 s of the master freezing (3 x advert_int + skew)', async () => {
    await new Promise((r) => setTimeout(r, 1500));
    expect(holdersOf(pair.hosts, VIP)).toEqual([master.ns]);
    const d = dirOf('controller');
    const frozen = [pidIn(join(d, 'keepalived.pid')), pidIn(join(d, 'vrrp.pid'))];
    const since = Date.now();
    for (const pid of frozen) process.kill(pid, 'SIGSTOP');
    try {
      const ms = await timeUntilHeldBy(backup.ns, 8_000, since);
      console.log(
        `VIP to the backup after the master froze: ${ms} ms (the frozen master still lists it: ${holdersOf(pair.hosts, VIP).join(', ')})`,
      );
      expect(ms).toBeLessThan(5_000);
    } finally {
      for (const pid of frozen) process.kill(pid, 'SIGCONT');
    }
  });

  it('leaves no keepalived of its own running once cleaned up', () => {
    pair.destroy();
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(master.ns);
  });
});
