// What each way of reaching a node costs the pool: a direct login, a login through a ProxyJump
// bastion, and a node proving itself with a host certificate (one more, shorter handshake).
// Real sshds on 127.0.24.30-33, an ssh config written for them, the pool as the worker uses it.
// Usage: npx tsx bench/ssh-routes.ts [rounds=5]
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshPool } from '../activities/ssh/pool';
import type { SshTarget } from '../common/sshTarget';
import { ensureKeyPair, startSshd, stopSshd } from '../lab/sshd';

const rounds = Number(process.argv[2] ?? 5);
const root = mkdtempSync(join(tmpdir(), 'bench-ssh-routes-'));

function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, address, () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const key = ensureKeyPair(join(root, 'id_ed25519'));
  const ca = ensureKeyPair(join(root, 'ca'));
  const certDir = join(root, 'cert');
  mkdirSync(certDir, { recursive: true });
  ensureKeyPair(join(certDir, 'ssh_host_ed25519_key'));
  execFileSync('ssh-keygen', [
    '-q',
    '-s',
    ca.privateKeyPath,
    '-I',
    'bench',
    '-h',
    '-n',
    '127.0.24.33',
    '-V',
    '-5m:+1h',
    join(certDir, 'ssh_host_ed25519_key.pub'),
  ]);
  const hosts = { direct: '127.0.24.30', bastion: '127.0.24.31', behind: '127.0.24.32', cert: '127.0.24.33' } as const;
  const sshds = await Promise.all(
    (Object.entries(hosts) as Array<[keyof typeof hosts, string]>).map(async ([name, address]) =>
      startSshd({
        name,
        dir: name === 'cert' ? certDir : join(root, name),
        address,
        port: await freePort(address),
        authorizedKeys: key.publicKey,
        // Root's own ~/.bashrc (which bash sources for ssh commands) would be measured too.
        env: { HOME: root },
        ...(name === 'cert'
          ? { extraConfig: [`HostCertificate ${join(certDir, 'ssh_host_ed25519_key-cert.pub')}`] }
          : {}),
      }),
    ),
  );
  const [direct, bastion, behind, cert] = sshds as [
    (typeof sshds)[number],
    (typeof sshds)[number],
    (typeof sshds)[number],
    (typeof sshds)[number],
  ];
  const kh = join(root, 'known_hosts');
  writeFileSync(
    kh,
    [
      direct.knownHostsLine,
      bastion.knownHostsLine,
      behind.knownHostsLine,
      `@cert-authority * ${ca.publicKey.split(' ').slice(0, 2).join(' ')}`,
      '',
    ].join('\n'),
  );
  const config = join(root, 'ssh_config');
  writeFileSync(
    config,
    `Host direct\n  HostName ${direct.address}\n  Port ${direct.port}\nHost bastion\n  HostName ${bastion.address}\n  Port ${bastion.port}\n` +
      `Host behind\n  HostName ${behind.address}\n  Port ${behind.port}\n  ProxyJump bastion\nHost cert\n  HostName ${cert.address}\n  Port ${cert.port}\n` +
      `Host *\n  User root\n  IdentityFile ${key.privateKeyPath}\n  UserKnownHostsFile ${kh}\n  GlobalKnownHostsFile /dev/null\n  IdentitiesOnly yes\n`,
  );
  const target = (host: string): SshTarget => ({
    node: host,
    host,
    port: 22,
    username: 'root',
    connectTimeoutMs: 10_000,
    sshConfig: config,
    defaults: ['port', 'username'],
  });

  console.log(`ssh routes, ${rounds} rounds each (median): fresh pool per round`);
  for (const route of ['direct', 'behind', 'cert'] as const) {
    const connect: number[] = [];
    const reuse: number[] = [];
    const parallel: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const pool = new SshPool();
      let t = Date.now();
      await pool.run(target(route), 'true');
      connect.push(Date.now() - t);
      t = Date.now();
      await pool.run(target(route), 'true');
      reuse.push(Date.now() - t);
      t = Date.now();
      await Promise.all(Array.from({ length: 24 }, () => pool.run(target(route), 'sleep 0.2')));
      parallel.push(Date.now() - t);
      await pool.close();
    }
    console.log(
      `  ${route.padEnd(7)} first command (connect + run) ${median(connect)} ms; next command ${median(reuse)} ms; 24 × sleep 0.2 at once ${median(parallel)} ms`,
    );
  }
  for (const s of sshds) stopSshd(s.dir);
  rmSync(root, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
