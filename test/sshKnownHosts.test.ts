// known_hosts parsing, and host key checking against a real sshd: unknown and changed keys
// are refused for good (no retry can fix them), with a message an operator can act on.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationFailure } from '@temporalio/common';
import { ensureKeyPair } from '../lab/sshd';
import { fingerprint, hostKeyAlgorithmsFor, knownHostsName, lookupKnownHosts } from '../activities/ssh/knownHosts';
import { SshPool } from '../activities/ssh/pool';
import { SshLab, type LabNode } from './helpers/sshLab';

const lab = new SshLab();
let node: LabNode;
let pool: SshPool;
let hostKey: string;
let otherKey: string;
const host = '127.0.13.1';

/** What `ssh-keygen -l` prints for a public key file: OpenSSH's own fingerprint. */
function opensshFingerprint(pubPath: string): string {
  return execFileSync('ssh-keygen', ['-l', '-f', pubPath], { encoding: 'utf8' }).split(' ')[1];
}

function keyOf(publicKeyLine: string): string {
  return publicKeyLine.split(/\s+/).slice(0, 2).join(' ');
}

beforeAll(async () => {
  node = await lab.node('apicomp', host);
  pool = new SshPool();
  hostKey = keyOf(node.sshd.hostPublicKey);
  otherKey = keyOf(ensureKeyPair(join(lab.root, 'impostor', 'key')).publicKey);
});

afterAll(async () => {
  await pool?.close();
  lab.cleanup();
});

describe('known_hosts parsing', () => {
  const [type, base64] = ['ssh-ed25519', 'AAAAC3NzaC1lZDI1NTE5AAAAIBJ1Q9tu4s8IxrgGpjMGQs6fa9qkhZ8PCAYzmT6Kgd2c'];

  it('uses the bare name for port 22 and [host]:port otherwise', () => {
    expect(knownHostsName('Node1.Example', 22)).toBe('node1.example');
    expect(knownHostsName('10.0.0.5', 2222)).toBe('[10.0.0.5]:2222');
  });

  it('matches plain names, comma lists, wildcards and negations, and skips comments and CA lines', () => {
    const text = [
      '# a comment',
      '',
      `ctl1,10.0.0.1 ${type} ${base64} ctl1-host`,
      `[10.0.0.2]:2222 ${type} ${base64}`,
      `*.compute.example,!bad.compute.example ${type} ${base64}`,
      `@cert-authority * ${type} ${base64}`,
    ].join('\n');
    expect(lookupKnownHosts(text, '10.0.0.1', 22).keys).toHaveLength(1);
    expect(lookupKnownHosts(text, 'CTL1', 22).keys[0].type).toBe(type);
    expect(lookupKnownHosts(text, '10.0.0.2', 2222).keys).toHaveLength(1);
    expect(lookupKnownHosts(text, '10.0.0.2', 22).keys).toHaveLength(0);
    expect(lookupKnownHosts(text, '10.0.0.1', 2222).keys).toHaveLength(0);
    expect(lookupKnownHosts(text, 'c7.compute.example', 22).keys).toHaveLength(1);
    expect(lookupKnownHosts(text, 'bad.compute.example', 22).keys).toHaveLength(0);
    // The CA line matches every host but must not count as a host key.
    expect(lookupKnownHosts(text, 'anything', 22).keys).toHaveLength(0);
  });

  it('reads hashed entries written by ssh-keygen -H, and @revoked lines', () => {
    const file = join(lab.root, 'hashed_known_hosts');
    writeFileSync(file, `[10.9.9.9]:2200 ${type} ${base64}\nctl9 ${type} ${base64}\n@revoked ctl9 ${type} ${base64}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/^\|1\|/m);
    expect(text).not.toContain('10.9.9.9');
    expect(lookupKnownHosts(text, '10.9.9.9', 2200).keys).toHaveLength(1);
    expect(lookupKnownHosts(text, '10.9.9.9', 2201).keys).toHaveLength(0);
    expect(lookupKnownHosts(text, 'ctl9', 22)).toMatchObject({ keys: [{ type }], revoked: [{ type }] });
  });

  it('offers every signature algorithm of an RSA key, and other types by name', () => {
    const keys = [
      { type: 'ssh-rsa', blob: Buffer.alloc(1) },
      { type: 'ecdsa-sha2-nistp256', blob: Buffer.alloc(1) },
    ];
    expect(hostKeyAlgorithmsFor(keys)).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa', 'ecdsa-sha2-nistp256']);
  });

  it('prints fingerprints the way ssh-keygen does', () => {
    const pub = join(node.sshd.dir, 'ssh_host_ed25519_key.pub');
    expect(fingerprint(Buffer.from(hostKey.split(' ')[1], 'base64'))).toBe(opensshFingerprint(pub));
  });
});

async function connectWith(knownHosts: string): Promise<unknown> {
  const path = join(lab.root, `known_hosts_${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, knownHosts);
  // A fresh pool each time: a pooled connection would skip the check being tested.
  const fresh = new SshPool();
  try {
    return await fresh.run(node.target({ knownHostsPath: path }), 'echo connected');
  } catch (err) {
    return err;
  } finally {
    await fresh.close();
  }
}

function expectRefusal(outcome: unknown, type: string): ApplicationFailure {
  expect(outcome).toBeInstanceOf(ApplicationFailure);
  const failure = outcome as ApplicationFailure;
  expect(failure.type).toBe(type);
  expect(failure.nonRetryable).toBe(true);
  expect(failure.message).toContain(`apicomp (${host}:${node.sshd.port})`);
  return failure;
}

describe('host key checking against a real sshd', () => {
  it('accepts the node key under its [host]:port entry', async () => {
    expect(await connectWith(`[${host}]:${node.sshd.port} ${hostKey}\n`)).toMatchObject({
      exitCode: 0,
      stdout: 'connected\n',
    });
  });

  it('accepts a hashed entry', async () => {
    const file = join(lab.root, 'hashed_for_node');
    writeFileSync(file, `${node.sshd.knownHostsLine}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    rmSync(`${file}.old`, { force: true });
    const hashed = readFileSync(file, 'utf8');
    expect(hashed.startsWith('|1|')).toBe(true);
    expect(await connectWith(hashed)).toMatchObject({ exitCode: 0 });
  });

  it('refuses an UNKNOWN host with its fingerprint and the known_hosts path', async () => {
    const failure = expectRefusal(await connectWith('# nothing yet\n'), 'SshHostKeyUnknown');
    expect(failure.message).toMatch(/is not in .*known_hosts_\w+: add it with ssh-keyscan/);
    expect(failure.message).toContain(opensshFingerprint(join(node.sshd.dir, 'ssh_host_ed25519_key.pub')));
  });

  it('treats a key known only for another port, or only for port 22, as UNKNOWN', async () => {
    expectRefusal(
      await connectWith(`[${host}]:${node.sshd.port + 1} ${hostKey}\n${host} ${hostKey}\n`),
      'SshHostKeyUnknown',
    );
  });

  it('refuses a CHANGED key, naming both fingerprints', async () => {
    const failure = expectRefusal(await connectWith(`[${host}]:${node.sshd.port} ${otherKey}\n`), 'SshHostKeyChanged');
    expect(failure.message).toContain('CHANGED');
    expect(failure.message).toContain(opensshFingerprint(join(node.sshd.dir, 'ssh_host_ed25519_key.pub')));
    expect(failure.message).toContain(opensshFingerprint(join(lab.root, 'impostor', 'key.pub')));
  });

  it('refuses as CHANGED a node that offers none of the key types known for it', async () => {
    const ecdsa = join(lab.root, 'ecdsa', 'key');
    execFileSync('sh', ['-c', `mkdir -p ${join(lab.root, 'ecdsa')} && ssh-keygen -q -t ecdsa -N '' -f ${ecdsa}`]);
    const failure = expectRefusal(
      await connectWith(`[${host}]:${node.sshd.port} ${keyOf(readFileSync(`${ecdsa}.pub`, 'utf8'))}\n`),
      'SshHostKeyChanged',
    );
    expect(failure.message).toContain('offers none of the key types');
  });

  it('refuses a key marked @revoked even when it is also listed', async () => {
    const entry = `[${host}]:${node.sshd.port} ${hostKey}`;
    expectRefusal(await connectWith(`${entry}\n@revoked ${entry}\n`), 'SshHostKeyRevoked');
  });
});
