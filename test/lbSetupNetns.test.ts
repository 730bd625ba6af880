// `lb setup` on hosts with their own network stack: two network namespaces made here, each with
// its own sshd, nova-api stand-in, HAProxy and keepalived, so sysctl, `ip addr`, VRRP and the
// VIP are real. The activities run as the workflow calls them, over the real SshPool.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateInventory } from '../inventory/load';
import type { Inventory } from '../inventory/schema';
import { createHaproxyActivities } from '../activities/haproxy/activities';
import { HaproxyRuntime } from '../activities/haproxy/runtimeApi';
import { createLbSetupActivities } from '../activities/lb/activities';
import { lbNodeJobs, vipCheck, type LbNodeJob } from '../common/lbJobs';
import { SshPool } from '../activities/ssh/pool';
import { ensureKeyPair, knownHostsEntry, startSshd } from '../lab/sshd';
import { dryRun } from '../client/lbSetup';
import { activityEnv } from './helpers/activityEnv';
import {
  createNetnsPair,
  forwardIntoNetns,
  inNetns,
  spawnInNetns,
  type Forward,
  type NetnsPair,
} from './helpers/netns';

const SUBNET = '10.250.61';
const VIP = `${SUBNET}.100`;
const root = mkdtempSync(join(tmpdir(), 'lb-netns-'));
const pool = new SshPool();
const lbActs = createLbSetupActivities({ runner: pool });
const haActs = createHaproxyActivities({ runner: pool });
const forwards: Forward[] = [];
let pair: NetnsPair;
let inv: Inventory;
let raw: Record<string, unknown>;

// Stand-ins for Debian's units, per node: no systemd runs inside a test's namespace.
const KEEPALIVED_RESTART = `#!/bin/sh
d=$(dirname "$1")
pid=$(cat "$d/keepalived.pid" 2>/dev/null)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
fi
exec keepalived -P -f "$1" -p "$d/keepalived.pid" -r "$d/vrrp.pid" -c "$d/checkers.pid" </dev/null >/dev/null 2>&1
`;
const HAPROXY_RELOAD =
  '/usr/sbin/haproxy -D -f {config} -p {pidFile} $(test -s {pidFile} && echo -sf $(cat {pidFile}))';

const API_SERVER = (name: string, address: string) =>
  `require('http').createServer((q, s) => { s.writeHead(200, { 'x-served-by': '${name}' }); s.end('${name}'); }).listen(8774, '${address}')`;

function nodeFiles(name: string) {
  const d = join(root, name);
  return {
    haproxyConfig: join(d, 'etc/haproxy/haproxy.cfg'),
    keepalivedConfig: join(d, 'etc/keepalived/keepalived.conf'),
    serverState: join(d, 'var/lib/haproxy/server-state'),
    haproxyPid: join(d, 'run/haproxy.pid'),
    sysctl: join(d, 'etc/sysctl.d/60-nova-upgrade-lb.conf'),
  };
}

function run<I, O>(fn: (input: I) => Promise<O>, input: I): Promise<O> {
  return activityEnv().run(fn, input);
}

/** What the workflow does for one node, in its order. */
async function setUpNode(job: LbNodeJob, all: LbNodeJob[]) {
  const ms: Record<string, number> = {};
  const timed = async <T>(step: string, p: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    const out = await p();
    ms[step] = Date.now() - t;
    return out;
  };
  const diff = await timed('diff', () => run(lbActs.diffLoadBalancerNode, job));
  const valid = await timed('validate', () => run(lbActs.validateHaproxyConfig, job));
  const installed = await timed('install', () => run(lbActs.installLoadBalancerFiles, job));
  const reloaded = await timed('reload', () => run(lbActs.reloadLoadBalancerServices, job));
  const vip = await timed('verify', () =>
    run(lbActs.verifyLoadBalancerVip, { ...vipCheck(inv, all), from: { node: job.node, target: job.target } }),
  );
  const check = await timed('preflight', () =>
    run(haActs.checkLoadBalancers, {
      lbs: [job.lb],
      backend: inv.haproxy.backend,
      servers: inv.loadBalancer!.servers.map((s) => s.name),
    }),
  );
  console.log(
    `${job.node}: ${Object.entries(ms)
      .map(([k, v]) => `${k} ${v} ms`)
      .join(', ')}`,
  );
  return { diff, valid, installed, reloaded, vip, check };
}

beforeAll(async () => {
  pair = createNetnsPair(`lbs${process.pid % 100000}`, SUBNET);
  const key = ensureKeyPair(join(root, 'id_ed25519'));
  const bin = join(root, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'keepalived-restart'), KEEPALIVED_RESTART);
  chmodSync(join(bin, 'keepalived-restart'), 0o755);
  const names = ['controller', 'apicomp'];
  const known: string[] = [];
  const nodes = [];
  for (const [i, host] of pair.hosts.entries()) {
    const name = names[i]!;
    // /run of a real node: HAProxy makes its socket and pid file there but not the directory.
    mkdirSync(join(root, name, 'run'), { recursive: true });
    const sshd = await startSshd({
      name,
      dir: join(root, name, 'sshd'),
      address: '127.0.0.1',
      port: 22,
      authorizedKeys: key.publicKey,
      netns: host.ns,
      env: { PATH: `${bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` },
    });
    const fwd = await forwardIntoNetns(host.ns, 22);
    forwards.push(fwd);
    known.push(knownHostsEntry('127.0.0.1', fwd.port, sshd.hostPublicKey));
    spawnInNetns(pair, host.ns, process.execPath, ['-e', API_SERVER(name, host.address)]);
    nodes.push({
      name,
      address: '127.0.0.1',
      sshPort: fwd.port,
      roles: i === 0 ? ['controller', 'api', 'lb'] : ['api', 'lb'],
      api: { url: `http://${host.address}:8774` },
      lb: { socket: { via: 'ssh', path: join(root, name, 'run/haproxy.sock'), sudo: false }, files: nodeFiles(name) },
    });
  }
  writeFileSync(join(root, 'known_hosts'), `${known.join('\n')}\n`);
  raw = {
    cloud: 'netns',
    release: { from: '30.0.0', to: '31.0.0' },
    ssh: {
      user: 'root',
      privateKeyPath: key.privateKeyPath,
      knownHostsPath: join(root, 'known_hosts'),
      connectTimeoutSeconds: 5,
    },
    vip: { url: `http://${VIP}:8282` },
    commands: { haproxyReload: HAPROXY_RELOAD, keepalivedRestart: 'keepalived-restart {config}' },
    loadBalancer: { interface: pair.hosts[0].iface, sudo: false, healthCheck: { path: '/', intervalSeconds: 1 } },
    nodes,
  };
  inv = validateInventory(raw, 'netns inventory');
}, 60_000);

afterAll(async () => {
  await pool.close();
  for (const f of forwards) await f.close();
  // Kills every process left in the namespaces (sshd, HAProxy, keepalived, the API stand-ins).
  pair?.destroy();
  rmSync(root, { recursive: true, force: true });
});

describe('lb setup in network namespaces', () => {
  it('--dry-run prints the diffs over SSH and changes nothing', async () => {
    const lines: string[] = [];
    await dryRun(inv, (t) => lines.push(t));
    const text = lines.join('\n');
    expect(text).toContain(`--- ${nodeFiles('controller').haproxyConfig} (absent)`);
    expect(text).toContain(`+++ ${nodeFiles('controller').haproxyConfig} (rendered)`);
    expect(text).toContain('net.ipv4.ip_nonlocal_bind is 0 now; the run sets it to 1');
    expect(text).toMatch(/Dry run: nothing was changed on any node\.$/);
    expect(existsSync(nodeFiles('controller').haproxyConfig)).toBe(false);
    expect(existsSync(nodeFiles('apicomp').serverState)).toBe(false);
  });

  it('installs HAProxy + keepalived on both nodes, one at a time, and the VIP answers', async () => {
    const jobs = lbNodeJobs(inv);
    expect(jobs.map((j) => j.node)).toEqual(['apicomp', 'controller']);
    for (const h of pair.hosts) expect(inNetns(h.ns, 'sysctl', '-n', 'net.ipv4.ip_nonlocal_bind').trim()).toBe('0');

    const started = Date.now();
    const backup = await setUpNode(jobs[0]!, jobs);
    expect(backup.diff.files.map((f) => f.state)).toEqual(['absent', 'absent', 'absent']);
    expect(backup.installed.installed).toHaveLength(3);
    expect(backup.reloaded.summary).toBe('apicomp: started HAProxy; restarted keepalived');
    // Alone with keepalived, the backup takes the VIP: the frontend never lacks a holder.
    expect(backup.vip.holder).toBe('apicomp');

    const master = await setUpNode(jobs[1]!, jobs);
    expect(master.vip.holder).toBe('controller');
    expect(master.vip.httpStatus).toBe(200);
    console.log(`first run: ${Date.now() - started} ms; ${master.vip.summary}; ${master.check.summary}`);

    for (const h of pair.hosts) expect(inNetns(h.ns, 'sysctl', '-n', 'net.ipv4.ip_nonlocal_bind').trim()).toBe('1');
    expect(readFileSync(nodeFiles('controller').sysctl, 'utf8')).toContain('net.ipv4.ip_nonlocal_bind = 1');
    expect(inNetns(pair.hosts[0].ns, 'ip', '-o', '-4', 'addr', 'show')).toContain(`inet ${VIP}/32`);
    expect(inNetns(pair.hosts[1].ns, 'ip', '-o', '-4', 'addr', 'show')).not.toContain(`inet ${VIP}/`);
    // From the other namespace, through the VIP, round robin reaches both API servers.
    const servedBy = new Set<string>();
    for (let i = 0; i < 4; i++)
      servedBy.add(inNetns(pair.hosts[1].ns, 'curl', '-s', '--max-time', '5', `http://${VIP}:8282/`));
    expect([...servedBy].sort()).toEqual(['apicomp', 'controller']);
  });

  it('changes nothing when run again with the same inventory, and says so', async () => {
    const jobs = lbNodeJobs(inv);
    const pids = jobs.map((j) => readFileSync(j.haproxyPidFile, 'utf8'));
    for (const job of jobs) {
      const again = await setUpNode(job, jobs);
      expect(again.diff.changes).toBe(false);
      expect(again.diff.summary).toBe(`${job.node}: nothing to change`);
      expect(again.installed).toMatchObject({
        alreadyDone: true,
        summary: `${job.node}: files already as rendered`,
        installed: [],
      });
      expect(again.reloaded).toMatchObject({
        alreadyDone: true,
        summary: `${job.node}: HAProxy and keepalived already run the installed files`,
      });
    }
    expect(jobs.map((j) => readFileSync(j.haproxyPidFile, 'utf8'))).toEqual(pids);
  });

  it('keeps a drained server drained across the reload a config change causes', async () => {
    const controller = lbNodeJobs(inv).find((j) => j.node === 'controller')!;
    const rt = new HaproxyRuntime(controller.lb, { runner: pool });
    await rt.execute([{ text: 'set server nova-api/apicomp state maint', backend: 'nova-api', server: 'apicomp' }]);

    const changed = validateInventory({
      ...raw,
      loadBalancer: { ...(raw.loadBalancer as object), healthCheck: { path: '/', intervalSeconds: 2 } },
    });
    const jobs = lbNodeJobs(changed);
    const job = jobs.find((j) => j.node === 'controller')!;
    const diff = await run(lbActs.diffLoadBalancerNode, job);
    expect(diff.files.find((f) => f.kind === 'haproxy')!.diff).toMatch(
      /^-\s+default-server inter 1000ms\n\+\s+default-server inter 2000ms$/m,
    );
    await run(lbActs.validateHaproxyConfig, job);
    const installed = await run(lbActs.installLoadBalancerFiles, job);
    expect(installed.installed).toEqual([job.files[0]!.path]);
    expect(installed.backups).toHaveLength(1);
    const reloaded = await run(lbActs.reloadLoadBalancerServices, job);
    expect(reloaded.summary).toBe(
      'controller: saved the state of 2 server(s) to ' + job.serverStateFile + '; reloaded HAProxy',
    );

    const state = await rt.one({ text: 'show servers state nova-api', backend: 'nova-api' });
    const apicomp = state.split('\n').find((l) => l.split(' ')[3] === 'apicomp')!;
    // srv_admin_state 1: forced maintenance, as set before the reload.
    expect(apicomp.split(' ')[6]).toBe('1');
    await rt.execute([{ text: 'set server nova-api/apicomp state ready', backend: 'nova-api', server: 'apicomp' }]);
  });
});
