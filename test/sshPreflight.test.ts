// The node-access preflight against real sshd and the real sudo: per-node users and keys, and a
// sudo that would ask for a password refused before anything changes, naming the node. Two
// test users with their sudoers rules are made here and removed afterwards.
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSshPreflightActivities } from '../activities/ssh/preflight';
import { SshPool } from '../activities/ssh/pool';
import { nodesUsingSudo, usesSudo } from '../common/sudo';
import { sshTargetFor } from '../common/sshTarget';
import { validateInventory } from '../inventory/load';
import type { Inventory } from '../inventory/schema';
import { ensureKeyPair, type KeyPair } from '../lab/sshd';
import { plannedSteps as planUpgrade } from '../workflows/runbook';
import { activityEnv, failureOf } from './helpers/activityEnv';
import { runCli } from './helpers/cli';
import { freePort, SshLab, type LabNode } from './helpers/sshLab';

const USER_PW = 'nu24-sudo-pw';
const USER_OK = 'nu24-sudo-ok';
const SUDOERS = '/etc/sudoers.d/nova-upgrade-test-ssh24';
const lab = new SshLab();
const pool = new SshPool();
const acts = createSshPreflightActivities({ runner: pool });
let okNode: LabNode;
let pwNode: LabNode;
let nodeKey: KeyPair;
let inv: Inventory;
let raw: Record<string, unknown>;

function ensureUser(name: string): void {
  try {
    execFileSync('id', [name], { stdio: 'ignore' });
  } catch {
    // A home of "/" so the login has somewhere to chdir. Password "*": none can match, yet the
    // account is not locked ("!"), which sshd would refuse even for a key without PAM.
    execFileSync(
      'useradd',
      ['--system', '--no-create-home', '--home-dir', '/', '--shell', '/bin/sh', '--password', '*', name],
      { stdio: 'ignore' },
    );
  }
}

const fingerprintOf = (pub: string) =>
  execFileSync('ssh-keygen', ['-l', '-f', pub], { encoding: 'utf8' }).split(' ')[1]!;
const acceptedKeys = (n: LabNode) =>
  [
    ...readFileSync(join(n.sshd.dir, 'sshd.log'), 'utf8').matchAll(
      /Accepted publickey for (\S+) from \S+ port \d+ ssh2: \S+ (\S+)/g,
    ),
  ].map((m) => `${m[1]} ${m[2]}`);

beforeAll(async () => {
  ensureUser(USER_PW);
  ensureUser(USER_OK);
  const sudoers = `${USER_PW} ALL=(ALL) ALL\n${USER_OK} ALL=(ALL) NOPASSWD: ALL\n`;
  writeFileSync(`${SUDOERS}.new`, sudoers);
  chmodSync(`${SUDOERS}.new`, 0o440);
  execFileSync('visudo', ['-c', '-q', '-f', `${SUDOERS}.new`]);
  execFileSync('mv', [`${SUDOERS}.new`, SUDOERS]);

  // The nodes let in only their own key, not the inventory-wide one.
  nodeKey = ensureKeyPair(join(lab.root, 'node-keys', 'compute_ed25519'), 'per-node-key');
  okNode = await lab.node('compute-ok', '127.0.26.5', { authorizedKeys: [nodeKey.publicKey] });
  pwNode = await lab.node('compute-pw', '127.0.26.6', { authorizedKeys: [nodeKey.publicKey] });
  // sshd reads authorized_keys as the user logging in: let the test users through to it.
  for (const n of [okNode, pwNode]) {
    for (const dir of [lab.root, n.sshd.dir]) chmodSync(dir, 0o755);
    chmodSync(join(n.sshd.dir, 'authorized_keys'), 0o644);
  }
  const knownHosts = join(lab.root, 'known_hosts');
  writeFileSync(knownHosts, `${okNode.sshd.knownHostsLine}\n${pwNode.sshd.knownHostsLine}\n`);
  // ctl and api2 have no sshd: a closed port on an address of this test's subnet.
  const closed = await freePort('127.0.26.50');
  raw = {
    cloud: 'sudo',
    release: { from: '30.0.0', to: '31.0.0' },
    ssh: { config: 'none', user: 'root', privateKeyPath: lab.clientKey.privateKeyPath, knownHostsPath: knownHosts },
    vip: { url: 'http://127.0.26.100:8282' },
    nodes: [
      {
        name: 'ctl',
        address: '127.0.26.50',
        sshPort: closed,
        roles: ['controller', 'api', 'lb'],
        lb: { socket: { via: 'unix', path: '/run/haproxy.sock' } },
      },
      { name: 'api2', address: '127.0.26.51', sshPort: closed, roles: ['api'] },
      {
        name: 'compute-ok',
        address: '127.0.26.5',
        sshPort: okNode.sshd.port,
        sshUser: USER_OK,
        sshPrivateKeyPath: nodeKey.privateKeyPath,
        roles: ['compute'],
      },
      {
        name: 'compute-pw',
        address: '127.0.26.6',
        sshPort: pwNode.sshd.port,
        sshUser: USER_PW,
        sshPrivateKeyPath: nodeKey.privateKeyPath,
        roles: ['compute'],
      },
    ],
  };
  inv = validateInventory(raw);
});

afterAll(async () => {
  await pool.close();
  lab.cleanup();
  rmSync(SUDOERS, { force: true });
  for (const u of [USER_PW, USER_OK]) {
    try {
      execFileSync('userdel', [u], { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
  }
});

const targetOf = (name: string) =>
  sshTargetFor(
    inv,
    inv.nodes.find((n) => n.name === name)!,
  );

describe('per-node user and key', () => {
  it("logs in to each node as its own user with its own key, the inventory's key not being let in", async () => {
    const r = await activityEnv().run(acts.checkNodeAccess, { target: targetOf('compute-ok'), sudo: true });
    expect(r).toMatchObject({
      node: 'compute-ok',
      loginUser: USER_OK,
      sudo: 'works without a password',
      route: `${USER_OK}@127.0.26.5:${okNode.sshd.port}`,
    });
    expect(r.commands.map((c) => [c.command, c.exitCode])).toEqual([
      ['id -un', 0],
      ['sudo -n true', 0],
    ]);
    expect(acceptedKeys(okNode).at(-1)).toBe(`${USER_OK} ${fingerprintOf(`${nodeKey.privateKeyPath}.pub`)}`);

    // The same node with the inventory-wide key instead: refused, so the node's own key did the work.
    const failure = await failureOf(
      pool.run({ ...targetOf('compute-ok'), privateKeyPath: lab.clientKey.privateKeyPath }, 'true'),
    );
    expect(failure.type).toBe('SshAuthFailed');
  });
});

describe('sudo at preflight', () => {
  it('refuses a node where sudo would ask for a password, naming the node, and changes nothing', async () => {
    const failure = await failureOf(
      activityEnv().run(acts.checkNodeAccess, { target: targetOf('compute-pw'), sudo: true }),
    );
    expect(failure).toMatchObject({ type: 'SshSudoNeedsPassword', nonRetryable: true });
    expect(failure.message).toBe(
      `sudo on compute-pw asks ${USER_PW} for a password (\`sudo -n true\` said "sudo: a password is required"); nova-upgrade never types passwords: ` +
        `give ${USER_PW} password-less sudo there (NOPASSWD in sudoers), or log in as root`,
    );
    // The real sudo, asked directly, agrees that it wants a password.
    const direct = await pool.run(targetOf('compute-pw'), 'sudo -n true; echo "exit $?"');
    expect(direct.stdout).toBe('exit 1\n');
  });

  it('checks every node in one activity and names each refused one with its own type', async () => {
    const nodes = [
      { target: targetOf('compute-ok'), sudo: true },
      { target: targetOf('compute-pw'), sudo: true },
    ];
    const failure = await failureOf(activityEnv().run(acts.checkNodesAccess, { nodes }));
    expect(failure).toMatchObject({ type: 'SshNodeAccessRefused', nonRetryable: true });
    expect(failure.message).toMatch(
      /^1 of 2 node\(s\) cannot be used: sudo on compute-pw asks .* \[SshSudoNeedsPassword\]$/,
    );
    const ok = await activityEnv().run(acts.checkNodesAccess, { nodes: [nodes[0]!, { ...nodes[1]!, sudo: false }] });
    expect(ok.summary).toBe('logged in to all 2 node(s); sudo works without a password on the 1 that use it');
  });

  it('checks a chunk of nodes: counts and each refusal by node, commands once per command, not per node', async () => {
    const nodes = [
      { target: targetOf('compute-ok'), sudo: true },
      { target: targetOf('compute-pw'), sudo: true },
      { target: targetOf('compute-ok'), sudo: false },
    ];
    const r = await activityEnv().run(acts.checkNodesAccessChunk, { nodes });
    expect(r).toMatchObject({ checked: 2, sudo: 1, loginUsers: [USER_OK] });
    expect(r.refused).toEqual([
      { node: 'compute-pw', error: expect.stringMatching(/^sudo on compute-pw asks /), type: 'SshSudoNeedsPassword' },
    ]);
    expect(r.summary).toMatch(
      new RegExp(`^logged in to 2 of 3 node\\(s\\) \\(compute-ok … compute-ok\\) as ${USER_OK}; .* 1 refused$`),
    );
    expect(r.commands.map((c) => [c.node, c.command, c.exitCode])).toEqual([
      ['2 node(s) of compute-ok … compute-ok', 'id -un', 0],
      ['1 node(s) of compute-ok … compute-ok', 'sudo -n true', 0],
    ]);
    // A login that may work on a retry (nothing listens) fails the call, naming the node, for Temporal to retry;
    // the node that answered is not refused.
    const failure = await failureOf(
      activityEnv().run(acts.checkNodesAccessChunk, { nodes: [{ target: targetOf('ctl'), sudo: false }, nodes[0]!] }),
    );
    expect(failure).toMatchObject({ type: 'SshNodeAccessRefused', nonRetryable: false });
    expect(failure.message).toMatch(/^1 of 2 node\(s\) cannot be used: cannot connect to ctl .*\[SshConnectFailed\]$/);
    // Each node's refusal in the details, for the workflow to name once the retries are spent.
    expect(failure.details).toEqual([
      { refused: [{ node: 'ctl', error: expect.stringMatching(/^cannot connect to ctl /), type: 'SshConnectFailed' }] },
    ]);
  });

  it('does not ask sudo on a node whose commands do not use it', async () => {
    const r = await activityEnv().run(acts.checkNodeAccess, { target: targetOf('compute-pw'), sudo: false });
    expect(r).toMatchObject({ loginUser: USER_PW, sudo: 'not used' });
    expect(r.commands.map((c) => c.command)).toEqual(['id -un']);
  });

  it("finds the nodes whose planned commands use sudo: every node with devstack's defaults", () => {
    const planned = planUpgrade(inv).flatMap((s) => s.commands);
    expect(nodesUsingSudo(planned).sort()).toEqual(['api2', 'compute-ok', 'compute-pw', 'ctl']);
    const rootOnly = validateInventory({
      ...JSON.parse(JSON.stringify({ cloud: 'x', release: inv.release, vip: { url: inv.vip.url } })),
      commands: Object.fromEntries(Object.entries(inv.commands).map(([k, v]) => [k, v.replace(/sudo (-H )?/g, '')])),
      nodes: [
        {
          name: 'ctl',
          address: '127.0.26.50',
          roles: ['controller', 'api', 'lb'],
          lb: { socket: { via: 'unix', path: '/run/haproxy.sock' } },
        },
        { name: 'api2', address: '127.0.26.51', roles: ['api'] },
      ],
    });
    expect(nodesUsingSudo(planUpgrade(rootOnly).flatMap((s) => s.commands))).toEqual([]);
    expect([
      usesSudo('sudo -n true'),
      usesSudo('x && sudo y'),
      usesSudo('echo pseudo-thing'),
      usesSudo('cat sudoers'),
    ]).toEqual([true, true, false, false]);
  });
});

describe('openConnections', () => {
  it("logs in to a batch's nodes ahead of it and keeps the connection; a node that does not answer is counted, never a failure", async () => {
    const r = await activityEnv().run(acts.openConnections, {
      targets: [targetOf('compute-ok'), targetOf('ctl')],
      timeoutMs: 5000,
    });
    expect(r).toEqual({
      summary: 'logged in to 1 of 2 node(s) ahead of their batch; 1 did not answer (their batch decides)',
      opened: 1,
      failed: 1,
    });
    // The batch's first command finds the connection open: no handshake of its own.
    const opened = pool.stats().connectionsOpened;
    expect((await pool.run(targetOf('compute-ok'), 'id -un')).stdout.trim()).toBe(USER_OK);
    expect(pool.stats().connectionsOpened).toBe(opened);
  });
});

describe('nova-upgrade inventory check-ssh', () => {
  it("checks every node from the operator's machine, says which are refused and why, and exits 1", async () => {
    const file = join(lab.root, 'inventory.yaml');
    writeFileSync(file, JSON.stringify(raw));
    const r = await runCli(['inventory', 'check-ssh', '-i', file]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines.at(-1)).toBe('1 node ready, 3 refused; nothing was changed on any node.');
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^ok {7}compute-ok: logged in as nu24-sudo-ok via nu24-sudo-ok@127\.0\.26\.5:\d+; sudo works without a password$/,
      ),
    );
    expect(lines).toContainEqual(
      `refused  compute-pw: sudo on compute-pw asks ${USER_PW} for a password (\`sudo -n true\` said "sudo: a password is required"); nova-upgrade never types passwords: give ${USER_PW} password-less sudo there (NOPASSWD in sudoers), or log in as root`,
    );
    for (const [name, address] of [
      ['ctl', '127.0.26.50'],
      ['api2', '127.0.26.51'],
    ]) {
      expect(lines).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^refused  ${name}: cannot connect to ${name} \\(${address!.replace(/\./g, '\\.')}:\\d+\\): connection refused .*\\(may pass on a later try\\)$`,
          ),
        ),
      );
    }
    expect(r.stderr).toMatch(
      /^nova-upgrade: 3 nodes cannot be reached as the upgrade needs: (ctl|api2|compute-pw), (ctl|api2|compute-pw), (ctl|api2|compute-pw)\n$/,
    );
  });
});
