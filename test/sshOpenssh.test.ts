// SSH as OpenSSH reads it, against real sshd: a node named only by its ssh config alias, keys
// held by ssh-agent (a passphrase-protected one included), and host certificates signed with
// ssh-keygen -s. Where it matters, the real OpenSSH client is asked the same question and must
// agree.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshPool } from '../activities/ssh/pool';
import { sshTargetFor, type SshTarget } from '../common/sshTarget';
import { validateInventory } from '../inventory/load';
import { ensureKeyPair, type KeyPair } from '../lab/sshd';
import { failureOf } from './helpers/failures';
import { SshLab, type LabNode } from './helpers/sshLab';

const lab = new SshLab();
const pool = new SshPool();
const PASSPHRASE = 'correct horse battery staple';
let plain: LabNode;
let certNode: LabNode;
let expiredNode: LabNode;
let encrypted: KeyPair;
let ca: KeyPair;
const agents: ChildProcess[] = [];

function sshKeygen(...args: string[]): void {
  execFileSync('ssh-keygen', ['-q', ...args], { stdio: 'ignore' });
}

function fingerprintOf(pubPath: string): string {
  return execFileSync('ssh-keygen', ['-l', '-f', pubPath], { encoding: 'utf8' }).split(' ')[1]!;
}

function acceptedKeys(n: LabNode): string[] {
  return [
    ...readFileSync(join(n.sshd.dir, 'sshd.log'), 'utf8').matchAll(
      /Accepted publickey for \S+ from \S+ port \d+ ssh2: \S+ (\S+)/g,
    ),
  ].map((m) => m[1]!);
}

/**
 * Connections sshd logged, counted by client port: any connection leaves a line naming its port,
 * even one closed before auth. Lines are not counted, since an earlier connection's closing lines
 * ("Received disconnect", "Disconnected from user") can land after the count is taken (CI saw 3
 * lines become 5 with no new connection).
 */
function connectionsSeen(n: LabNode): number {
  const ports = new Set<string>();
  for (const line of readFileSync(join(n.sshd.dir, 'sshd.log'), 'utf8').split('\n')) {
    if (line.startsWith('Server listening')) continue;
    const m = / from \S+ port (\d+)/.exec(line) ?? / by \S+ port (\d+)/.exec(line);
    if (m) ports.add(m[1]!);
  }
  return ports.size;
}

/** A host key signed by the CA before sshd starts, so sshd serves the certificate. */
function certifiedHostKey(name: string, validity: string, principals: string): string {
  const dir = join(lab.root, name);
  mkdirSync(dir, { recursive: true });
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  ensureKeyPair(hostKey, `${name}-host`);
  sshKeygen('-s', ca.privateKeyPath, '-I', `${name}-cert`, '-h', '-n', principals, '-V', validity, `${hostKey}.pub`);
  return `${hostKey}-cert.pub`;
}

async function startAgent(name: string): Promise<string> {
  const sock = join(lab.root, `${name}.sock`);
  const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
  agents.push(agent);
  for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
  return sock;
}

/** ssh-add with the passphrase given the way a desktop would: through SSH_ASKPASS. */
function addToAgent(sock: string, key: string): void {
  const askpass = join(lab.root, 'askpass.sh');
  writeFileSync(askpass, `#!/bin/sh\necho '${PASSPHRASE}'\n`);
  chmodSync(askpass, 0o700);
  execFileSync('ssh-add', [key], {
    env: { ...process.env, SSH_AUTH_SOCK: sock, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: 'none' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function configFile(name: string, text: string): string {
  const path = join(lab.root, name);
  writeFileSync(path, text);
  return path;
}

/** What a test's own process sees of SSH_AUTH_SOCK, set and restored around `work`. */
async function withAgentSocket<T>(sock: string | undefined, work: () => Promise<T>): Promise<T> {
  const before = process.env.SSH_AUTH_SOCK;
  if (sock === undefined) delete process.env.SSH_AUTH_SOCK;
  else process.env.SSH_AUTH_SOCK = sock;
  try {
    return await work();
  } finally {
    if (before === undefined) delete process.env.SSH_AUTH_SOCK;
    else process.env.SSH_AUTH_SOCK = before;
  }
}

beforeAll(async () => {
  encrypted = { privateKeyPath: join(lab.root, 'keys', 'id_encrypted'), publicKey: '' };
  mkdirSync(join(lab.root, 'keys'), { recursive: true });
  sshKeygen('-t', 'ed25519', '-N', PASSPHRASE, '-C', 'operator-with-passphrase', '-f', encrypted.privateKeyPath);
  encrypted.publicKey = readFileSync(`${encrypted.privateKeyPath}.pub`, 'utf8').trim();
  ca = ensureKeyPair(join(lab.root, 'ca', 'host_ca'), 'host-ca');

  plain = await lab.node('plain', '127.0.25.1', { authorizedKeys: [lab.clientKey.publicKey, encrypted.publicKey] });
  certNode = await lab.node('certnode', '127.0.25.2', {
    extraConfig: [`HostCertificate ${certifiedHostKey('certnode', '-5m:+1h', '127.0.25.2,certnode.example')}`],
  });
  expiredNode = await lab.node('expired', '127.0.25.3', {
    extraConfig: [`HostCertificate ${certifiedHostKey('expired', '20200101:20200102', '127.0.25.3')}`],
  });
});

afterAll(async () => {
  await pool.close();
  for (const a of agents) a.kill('SIGTERM');
  lab.cleanup();
});

function inventoryWith(ssh: Record<string, unknown>, node: Record<string, unknown>) {
  return validateInventory({
    cloud: 'byo',
    release: { from: '30.0.0', to: '31.0.0' },
    ssh,
    vip: { url: 'http://127.0.25.100:8282' },
    nodes: [
      {
        name: 'ctl',
        address: '127.0.25.50',
        roles: ['controller', 'api', 'lb'],
        lb: { socket: { via: 'unix', path: '/run/haproxy.sock' } },
      },
      { name: 'api2', address: '127.0.25.51', roles: ['api'] },
      node,
    ],
  });
}

describe('a node named only by its ssh config alias', () => {
  it('reaches the HostName, Port, User, IdentityFile and UserKnownHostsFile the config gives', async () => {
    const config = configFile(
      'alias.conf',
      `Host compute-a
  HostName 127.0.25.1
  Port ${plain.sshd.port}
  User root
  IdentityFile ${lab.clientKey.privateKeyPath}
  UserKnownHostsFile ${plain.knownHostsPath}

Host *
  StrictHostKeyChecking yes
  User nobody-by-default
`,
    );
    const inv = inventoryWith({ config }, { name: 'compute-a', sshHost: 'compute-a', roles: ['compute'] });
    const node = inv.nodes.find((n) => n.name === 'compute-a')!;
    const target = sshTargetFor(inv, node);
    expect(target).toMatchObject({ host: 'compute-a', sshConfig: config, defaults: ['port', 'username'] });
    expect(target.privateKeyPath).toBeUndefined();
    const r = await pool.run(target, 'echo "$(id -un) $SSH_CONNECTION"');
    expect(r.exitCode).toBe(0);
    const [user, , , serverIp, serverPort] = r.stdout.trim().split(' ');
    expect({ user, serverIp, serverPort: Number(serverPort) }).toEqual({
      user: 'root',
      serverIp: '127.0.25.1',
      serverPort: plain.sshd.port,
    });

    // The real client reads the same file to the same place.
    const ssh = spawnSync('ssh', ['-F', config, '-o', 'BatchMode=yes', 'compute-a', 'echo $SSH_CONNECTION'], {
      encoding: 'utf8',
    });
    expect(ssh.stdout.trim().split(' ').slice(2)).toEqual(['127.0.25.1', String(plain.sshd.port)]);
  });

  it('refuses a config saying StrictHostKeyChecking no for the node, before connecting', async () => {
    const config = configFile(
      'lax.conf',
      `Host lax\n  HostName 127.0.25.1\n  Port ${plain.sshd.port}\n  StrictHostKeyChecking no\n`,
    );
    const before = connectionsSeen(plain);
    // The alias test above connected, so the count does move when a connection happens.
    expect(before).toBeGreaterThan(0);
    const failure = await failureOf(
      pool.run(
        {
          node: 'lax',
          host: 'lax',
          port: 22,
          username: 'root',
          connectTimeoutMs: 5000,
          sshConfig: config,
          defaults: ['port'],
        },
        'true',
      ),
    );
    expect(failure).toMatchObject({ type: 'SshConfigRefused', nonRetryable: true });
    expect(failure.message).toBe(
      `cannot connect to lax: ${config} line 4: StrictHostKeyChecking no applies to lax, but nova-upgrade always checks host keys against known_hosts: ` +
        'remove the setting for this host, or add its key with ssh-keyscan after checking its fingerprint',
    );
    expect(connectionsSeen(plain)).toBe(before);
  });
});

describe('keys held by ssh-agent', () => {
  const target = (over: Partial<SshTarget> = {}): SshTarget =>
    plain.target({ node: 'agent1', privateKeyPath: encrypted.privateKeyPath, sshConfig: 'none', ...over });

  it('refuses a passphrase-protected key when no agent is set, naming the node and the file', async () => {
    const failure = await withAgentSocket(undefined, () => failureOf(new SshPool().run(target(), 'true')));
    expect(failure).toMatchObject({ type: 'SshKeyNeedsPassphrase', nonRetryable: true });
    expect(failure.message).toBe(
      `private key ${encrypted.privateKeyPath} for agent1 (127.0.25.1:${plain.sshd.port}) is protected by a passphrase and no ssh-agent is set for the worker (SSH_AUTH_SOCK is unset): ` +
        `load it into the worker's ssh-agent (ssh-add ${encrypted.privateKeyPath}, with SSH_AUTH_SOCK set for the worker), or name a key without a passphrase`,
    );
  });

  it('refuses it when the agent does not hold it', async () => {
    const sock = await startAgent('empty-agent');
    const failure = await withAgentSocket(sock, () => failureOf(new SshPool().run(target(), 'true')));
    expect(failure.type).toBe('SshKeyNeedsPassphrase');
    expect(failure.message).toContain(`is protected by a passphrase and the ssh-agent at ${sock} does not hold it`);
  });

  it('logs in with the passphrase-protected key once ssh-add loaded it into the agent at SSH_AUTH_SOCK', async () => {
    const sock = await startAgent('loaded-agent');
    addToAgent(sock, encrypted.privateKeyPath);
    const fresh = new SshPool();
    try {
      const r = await withAgentSocket(sock, () => fresh.run(target(), 'echo agent-ok'));
      expect(r.stdout).toBe('agent-ok\n');
    } finally {
      await fresh.close();
    }
    // sshd saw the encrypted key's public half, signed by the agent: no other key was offered first.
    expect(acceptedKeys(plain).at(-1)).toBe(fingerprintOf(`${encrypted.privateKeyPath}.pub`));
  });

  it('offers agent keys when the inventory and config name no key, as ssh does', async () => {
    const sock = await startAgent('agent-only');
    addToAgent(sock, encrypted.privateKeyPath);
    const fresh = new SshPool();
    try {
      const r = await withAgentSocket(sock, () =>
        fresh.run(plain.target({ node: 'agent2', privateKeyPath: undefined, sshConfig: 'none' }), 'echo via-agent'),
      );
      expect(r.stdout).toBe('via-agent\n');
    } finally {
      await fresh.close();
    }
  });
});

describe('@cert-authority host certificates', () => {
  const caLine = () => readFileSync(`${ca.privateKeyPath}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');

  async function connect(n: LabNode, knownHosts: string, over: Partial<SshTarget> = {}) {
    const path = join(lab.root, `kh-${Math.random().toString(36).slice(2)}`);
    writeFileSync(path, knownHosts);
    const fresh = new SshPool();
    try {
      return await fresh.run(n.target({ knownHostsPath: path, sshConfig: 'none', ...over }), 'echo certified');
    } catch (err) {
      return err;
    } finally {
      await fresh.close();
    }
  }

  /** The real ssh client with the same known_hosts: exit 0 when it trusts the host. */
  function openssh(n: LabNode, knownHosts: string): number | null {
    const path = join(lab.root, `kh-openssh-${Math.random().toString(36).slice(2)}`);
    writeFileSync(path, knownHosts);
    return spawnSync(
      'ssh',
      [
        '-F',
        'none',
        '-o',
        `UserKnownHostsFile=${path}`,
        '-o',
        'GlobalKnownHostsFile=/dev/null',
        '-o',
        'StrictHostKeyChecking=yes',
        '-o',
        'BatchMode=yes',
        '-i',
        lab.clientKey.privateKeyPath,
        '-p',
        String(n.sshd.port),
        `root@${n.sshd.address}`,
        'true',
      ],
      { stdio: 'ignore' },
    ).status;
  }

  it('trusts a host whose certificate a known CA signed for its name, as OpenSSH does', async () => {
    const kh = `@cert-authority [127.0.25.2]:${certNode.sshd.port} ${caLine()}\n`;
    expect(await connect(certNode, kh)).toMatchObject({ exitCode: 0, stdout: 'certified\n' });
    expect(openssh(certNode, kh)).toBe(0);
  });

  it('refuses a certificate signed by a CA known_hosts does not trust', async () => {
    const other = ensureKeyPair(join(lab.root, 'ca', 'other_ca'), 'other-ca');
    const kh = `@cert-authority * ${other.publicKey.split(' ').slice(0, 2).join(' ')}\n`;
    const failure = (await connect(certNode, kh)) as Error;
    expect(failure).toMatchObject({ type: 'SshHostCertificateInvalid', nonRetryable: true });
    expect(failure.message).toContain(
      `host key for certnode (127.0.25.2:${certNode.sshd.port}) cannot be trusted: its certificate is signed by CA ${fingerprintOf(`${ca.privateKeyPath}.pub`)}, which no @cert-authority line trusts for this host`,
    );
    expect(openssh(certNode, kh)).not.toBe(0);
  });

  it('refuses an expired certificate, as OpenSSH does', async () => {
    const kh = `@cert-authority * ${caLine()}\n`;
    const failure = (await connect(expiredNode, kh)) as Error;
    expect(failure.message).toContain('its certificate "expired-cert" expired at 2020-01-02');
    expect(openssh(expiredNode, kh)).not.toBe(0);
  });

  /** A config reaching certnode under HostKeyAlias `alias`, with known_hosts trusting the CA for it. */
  function aliasConfig(alias: string): string {
    const kh = join(lab.root, `kh-${alias}`);
    writeFileSync(kh, `@cert-authority ${alias} ${caLine()}\n`);
    return configFile(
      `cert-${alias}.conf`,
      `Host certnode\n  HostName 127.0.25.2\n  Port ${certNode.sshd.port}\n  HostKeyAlias ${alias}\n  UserKnownHostsFile ${kh}\n  GlobalKnownHostsFile /dev/null\n  IdentityFile ${lab.clientKey.privateKeyPath}\n  User root\n`,
    );
  }
  const viaConfig = (config: string): SshTarget => ({
    node: 'certnode',
    host: 'certnode',
    port: 22,
    username: 'root',
    connectTimeoutMs: 5000,
    sshConfig: config,
    defaults: ['port'],
  });

  it('refuses a certificate that does not name the host, as OpenSSH does', async () => {
    const config = aliasConfig('wrong.example');
    const failure = await failureOf(new SshPool().run(viaConfig(config), 'true'));
    expect(failure.type).toBe('SshHostCertificateInvalid');
    expect(failure.message).toContain(
      'its certificate "certnode-cert" names "127.0.25.2", "certnode.example", not "wrong.example"',
    );
    expect(
      spawnSync('ssh', ['-F', config, '-o', 'BatchMode=yes', 'certnode', 'true'], { stdio: 'ignore' }).status,
    ).not.toBe(0);
  });

  it('checks the certificate against a HostKeyAlias from the ssh config, as OpenSSH does', async () => {
    const config = aliasConfig('certnode.example');
    const fresh = new SshPool();
    try {
      expect((await fresh.run(viaConfig(config), 'echo aliased')).stdout).toBe('aliased\n');
    } finally {
      await fresh.close();
    }
    expect(
      spawnSync('ssh', ['-F', config, '-o', 'BatchMode=yes', 'certnode', 'true'], { stdio: 'ignore' }).status,
    ).toBe(0);
  });

  it('accepts a plain key listed for the host even when its certificate is not trusted, as OpenSSH does', async () => {
    const other = ensureKeyPair(join(lab.root, 'ca', 'other_ca'), 'other-ca');
    const plainKey = certNode.sshd.knownHostsLine;
    const kh = `@cert-authority * ${other.publicKey.split(' ').slice(0, 2).join(' ')}\n${plainKey}\n`;
    expect(await connect(certNode, kh)).toMatchObject({ exitCode: 0 });
    expect(openssh(certNode, kh)).toBe(0);
  });

  it('refuses a certificate whose CA is @revoked', async () => {
    const kh = `@cert-authority * ${caLine()}\n@revoked * ${caLine()}\n`;
    const failure = (await connect(certNode, kh)) as Error;
    expect(failure.message).toContain(
      `its certificate's CA ${fingerprintOf(`${ca.privateKeyPath}.pub`)} is marked @revoked`,
    );
    expect(openssh(certNode, kh)).not.toBe(0);
  });

  it('refuses a host that presents no certificate when only a CA is known for it', async () => {
    const failure = (await connect(plain, `@cert-authority * ${caLine()}\n`)) as Error;
    expect(failure).toMatchObject({ type: 'SshHostCertificateInvalid' });
    expect(failure.message).toContain('it presents no host certificate');
  });
});
