// ProxyJump through a bastion to a node the worker cannot reach: the node's sshd lives in a
// network namespace whose only link is a veth pair to the bastion's namespace. The worker
// reaches the bastion through a loopback forward into the bastion's namespace (127.0.27.20),
// and the node only through the bastion. The node also proves its identity with a host
// certificate, checked over the forwarded channel.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshPool } from '../activities/ssh/pool';
import { sshTargetFor, type SshTarget } from '../common/sshTarget';
import { validateInventory } from '../inventory/load';
import { ensureKeyPair, knownHostsEntry, startSshd, type SshdHandle } from '../lab/sshd';
import { failureOf } from './helpers/failures';
import { createNetnsPair, forwardIntoNetns, type Forward, type NetnsPair } from './helpers/netns';
import { freePort } from './helpers/sshLab';

const SUBNET = '10.250.24';
const BASTION_FWD = '127.0.27.20';
const JUMP1 = '127.0.27.21';
const root = mkdtempSync(join(tmpdir(), 'ssh-proxyjump-'));
const forwards: Forward[] = [];
let pair: NetnsPair;
let bastion: SshdHandle;
let node: SshdHandle;
let jump1: SshdHandle;
let bastionFwd: Forward;
let config: string;
let jumpKey: string;
let nodeKey: string;

const sshdDir = (name: string) => join(root, name);
const logOf = (h: SshdHandle) => readFileSync(join(h.dir, 'sshd.log'), 'utf8');
const logins = (h: SshdHandle) => (logOf(h).match(/Accepted publickey/g) ?? []).length;

beforeAll(async () => {
  pair = createNetnsPair(`pj${process.pid % 100000}`, SUBNET);
  const [bastionNs, nodeNs] = pair.hosts;
  const jump = ensureKeyPair(join(root, 'keys', 'jump_ed25519'), 'jump-key');
  const own = ensureKeyPair(join(root, 'keys', 'node_ed25519'), 'node-key');
  jumpKey = jump.privateKeyPath;
  nodeKey = own.privateKeyPath;

  // The node's host key is certified by a CA for its in-namespace address.
  const ca = ensureKeyPair(join(root, 'ca', 'host_ca'), 'host-ca');
  mkdirSync(sshdDir('node'), { recursive: true });
  const hostKey = join(sshdDir('node'), 'ssh_host_ed25519_key');
  ensureKeyPair(hostKey, 'node-host');
  execFileSync(
    'ssh-keygen',
    ['-q', '-s', ca.privateKeyPath, '-I', 'node-cert', '-h', '-n', nodeNs.address, '-V', '-5m:+1h', `${hostKey}.pub`],
    { stdio: 'ignore' },
  );

  // Only the node's own key logs in to the node; only the jump key to the jump hosts.
  // A $HOME of their own: bash sources ~/.bashrc for ssh commands, and root's may be slow.
  const env = { HOME: root };
  node = await startSshd({
    name: 'node',
    dir: sshdDir('node'),
    address: nodeNs.address,
    port: 22,
    authorizedKeys: own.publicKey,
    netns: nodeNs.ns,
    env,
    extraConfig: [`HostCertificate ${hostKey}-cert.pub`],
  });
  bastion = await startSshd({
    name: 'bastion',
    dir: sshdDir('bastion'),
    address: '127.0.0.1',
    port: 22,
    authorizedKeys: jump.publicKey,
    netns: bastionNs.ns,
    env,
  });
  bastionFwd = await forwardIntoNetns(bastionNs.ns, 22, BASTION_FWD);
  forwards.push(bastionFwd);
  jump1 = await startSshd({
    name: 'jump1',
    dir: sshdDir('jump1'),
    address: JUMP1,
    port: await freePort(JUMP1),
    authorizedKeys: jump.publicKey,
    env,
  });

  const knownHosts = join(root, 'known_hosts');
  writeFileSync(
    knownHosts,
    [
      knownHostsEntry(BASTION_FWD, bastionFwd.port, bastion.hostPublicKey),
      jump1.knownHostsLine,
      // Port 22: the bare address, as ssh looks it up.
      `@cert-authority ${nodeNs.address} ${ca.publicKey.split(' ').slice(0, 2).join(' ')}`,
      '',
    ].join('\n'),
  );
  config = join(root, 'ssh_config');
  writeFileSync(
    config,
    `Host bastion
  HostName ${BASTION_FWD}
  Port ${bastionFwd.port}
  IdentityFile ${jumpKey}

Host jump1
  HostName ${JUMP1}
  Port ${jump1.port}
  IdentityFile ${jumpKey}

Host compute-behind
  HostName ${nodeNs.address}
  IdentityFile ${nodeKey}
  ProxyJump bastion

Host compute-chain
  HostName ${nodeNs.address}
  IdentityFile ${nodeKey}
  ProxyJump root@jump1,bastion

Host compute-dead-jump
  HostName ${nodeNs.address}
  IdentityFile ${nodeKey}
  ProxyJump root@${JUMP1}:${await freePort(JUMP1)}

Host *
  User root
  UserKnownHostsFile ${knownHosts}
  GlobalKnownHostsFile /dev/null
  IdentitiesOnly yes
`,
  );
}, 60_000);

afterAll(async () => {
  for (const f of forwards) await f.close();
  try {
    process.kill(jump1.pid, 'SIGTERM');
  } catch {
    // Already gone.
  }
  pair?.destroy();
  rmSync(root, { recursive: true, force: true });
});

const target = (host: string, over: Partial<SshTarget> = {}): SshTarget => ({
  node: 'compute9',
  host,
  port: 22,
  username: 'root',
  connectTimeoutMs: 5000,
  sshConfig: config,
  defaults: ['port', 'username'],
  ...over,
});

describe('ProxyJump into a network namespace', () => {
  it('the node is reachable only from the bastion: its namespace has no other link', () => {
    const nodeRoutes = execFileSync('ip', ['-n', pair.hosts[1].ns, '-o', 'route'], { encoding: 'utf8' })
      .trim()
      .split('\n');
    expect(nodeRoutes).toEqual([
      expect.stringMatching(new RegExp(`^${SUBNET.replace(/\./g, '\\.')}\\.0/24 dev ${pair.hosts[1].iface}`)),
    ]);
    expect(execFileSync('ip', ['-o', 'addr'], { encoding: 'utf8' })).not.toContain(`${SUBNET}.`);
  });

  it('runs commands on the node through the bastion, the node named only by its alias in the inventory', async () => {
    const inv = validateInventory({
      cloud: 'jump',
      release: { from: '30.0.0', to: '31.0.0' },
      ssh: { config },
      vip: { url: 'http://127.0.27.100:8282' },
      nodes: [
        {
          name: 'ctl',
          address: '127.0.27.50',
          roles: ['controller', 'api', 'lb'],
          lb: { socket: { via: 'unix', path: '/run/haproxy.sock' } },
        },
        { name: 'api2', address: '127.0.27.51', roles: ['api'] },
        { name: 'compute9', sshHost: 'compute-behind', roles: ['compute'] },
      ],
    });
    const t = sshTargetFor(
      inv,
      inv.nodes.find((n) => n.name === 'compute9')!,
    );
    const pool = new SshPool();
    const bastionBefore = logins(bastion);
    try {
      const started = Date.now();
      const first = await pool.run(t, 'echo $SSH_CONNECTION');
      const firstMs = Date.now() - started;
      // The node sees the bastion's address inside the namespaces as the client.
      const [clientIp, , serverIp, serverPort] = first.stdout.trim().split(' ');
      expect({ clientIp, serverIp, serverPort }).toEqual({
        clientIp: `${SUBNET}.1`,
        serverIp: `${SUBNET}.2`,
        serverPort: '22',
      });
      expect(logOf(node)).toContain(`Accepted publickey for root from ${SUBNET}.1 port`);

      // Many commands at once: several connections to the node, one login on the bastion.
      const t2 = Date.now();
      const results = await Promise.all(Array.from({ length: 24 }, (_, i) => pool.run(t, `sleep 0.2; echo ${i}`)));
      console.log(
        `through the bastion: first command ${firstMs} ms (bastion login, certificate probe, node login); 24 more at once ${Date.now() - t2} ms; ${JSON.stringify(pool.stats())}`,
      );
      results.forEach((r, i) => expect(r.stdout).toBe(`${i}\n`));
      expect(pool.stats().connectionsOpened).toBeGreaterThan(1);
      expect(logins(bastion) - bastionBefore).toBe(1);
    } finally {
      await pool.close();
    }
  });

  it('follows a ProxyJump chain: jump1, then the bastion, then the node', async () => {
    const pool = new SshPool();
    const [j1, b] = [logins(jump1), logins(bastion)];
    try {
      expect(
        (await pool.run(target('compute-chain'), 'hostname -I 2>/dev/null || echo $SSH_CONNECTION')).exitCode,
      ).toBe(0);
    } finally {
      await pool.close();
    }
    expect([logins(jump1) - j1, logins(bastion) - b]).toEqual([1, 1]);
  });

  it('agrees with OpenSSH, which reaches the node with the same config', async () => {
    // Asynchronously: the loopback forward into the bastion's namespace runs in this process.
    const r = await new Promise<{ status: number | null; stdout: string }>((resolve) => {
      const child = spawn(
        'ssh',
        ['-F', config, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', 'compute-behind', 'echo $SSH_CONNECTION'],
        { stdio: ['ignore', 'pipe', 'ignore'] },
      );
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.on('close', (status) => resolve({ status, stdout }));
    });
    expect(r.status).toBe(0);
    expect(r.stdout.split(' ')[2]).toBe(`${SUBNET}.2`);
  });

  it('names the jump host when it cannot be reached, as a failure worth retrying', async () => {
    const pool = new SshPool();
    try {
      const failure = await failureOf(pool.run(target('compute-dead-jump'), 'true'));
      expect(failure).toMatchObject({ type: 'SshConnectFailed', nonRetryable: false });
      expect(failure.message).toMatch(
        new RegExp(
          `^cannot connect to compute9's jump host ${JUMP1.replace(/\./g, '\\.')} \\(${JUMP1.replace(/\./g, '\\.')}:\\d+\\): connection refused`,
        ),
      );
    } finally {
      await pool.close();
    }
  });

  it('refuses a bastion whose host key known_hosts does not hold, naming it', async () => {
    const empty = join(root, 'empty_known_hosts');
    writeFileSync(empty, '');
    const strict = join(root, 'ssh_config_unknown_bastion');
    writeFileSync(strict, readFileSync(config, 'utf8').replace(/UserKnownHostsFile .*/, `UserKnownHostsFile ${empty}`));
    const pool = new SshPool();
    try {
      const failure = await failureOf(pool.run(target('compute-behind', { sshConfig: strict }), 'true'));
      expect(failure).toMatchObject({ type: 'SshHostKeyUnknown', nonRetryable: true });
      expect(failure.message).toContain(
        `host key for compute9's jump host bastion (${BASTION_FWD}:${bastionFwd.port}) is not in ${empty}`,
      );
    } finally {
      await pool.close();
    }
  });
});
