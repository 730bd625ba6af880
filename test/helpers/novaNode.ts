// One fake nova node for activity tests: a real sshd on 127.0.0.1 whose sessions find the
// test doubles from test/fixtures/nova/fakebin first on PATH, with their state in a temp dir.
import { cpSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ensureKeyPair, startSshd, stopSshd } from '../../lab/sshd';
import type { SshTarget } from '../../common/sshTarget';
import { SshPool } from '../../activities/ssh/pool';
import type { RemoteRunner } from '../../activities/ssh/types';
import { SshCommandRunner } from './sshCommandRunner';

export interface FakeNovaNode {
  dir: string;
  /** Where the doubles keep state ($FAKE_STATE on the node). */
  state: string;
  /** For detached runs. */
  stateDir: string;
  target: SshTarget;
  /** The worker's SshPool; NOVA_TEST_SSH=cli switches to the OpenSSH client runner. */
  runner: RemoteRunner;
  read(name: string): string;
  write(name: string, content: string): void;
  /** Lines in a state file: how many times a double did something. */
  count(name: string): number;
  files(dir?: string): string[];
  stop(): void;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** `address`: a loopback address of the test's own subnet; 127.0.0.1 unless given. */
export async function startFakeNovaNode(node = 'apicomp', address = '127.0.0.1'): Promise<FakeNovaNode> {
  const dir = mkdtempSync(join(tmpdir(), `nova-${node}-`));
  const bin = join(dir, 'bin');
  const state = join(dir, 'state');
  mkdirSync(state, { recursive: true });
  cpSync(join(__dirname, '..', 'fixtures', 'nova', 'fakebin'), bin, { recursive: true });
  const key = ensureKeyPair(join(dir, 'id_ed25519'));
  const port = await freePort();
  const sshd = await startSshd({
    name: node,
    dir: join(dir, 'sshd'),
    address,
    port,
    authorizedKeys: key.publicKey,
    env: { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`, FAKE_STATE: state },
  });
  const knownHostsPath = join(dir, 'known_hosts');
  writeFileSync(knownHostsPath, `${sshd.knownHostsLine}\n`);
  const target: SshTarget = {
    node,
    host: address,
    port,
    username: userInfo().username,
    privateKeyPath: key.privateKeyPath,
    knownHostsPath,
    connectTimeoutMs: 5000,
  };
  const at = (name: string) => join(state, name);
  const pool = process.env.NOVA_TEST_SSH === 'cli' ? undefined : new SshPool({ idleTimeoutMs: 5000 });
  const runner: RemoteRunner = pool ?? new SshCommandRunner();
  return {
    dir,
    state,
    stateDir: join(dir, 'runs'),
    target,
    runner,
    read: (name) => readFileSync(at(name), 'utf8'),
    write: (name, content) => {
      mkdirSync(join(at(name), '..'), { recursive: true });
      writeFileSync(at(name), content);
    },
    count: (name) => (existsSync(at(name)) ? readFileSync(at(name), 'utf8').split('\n').filter(Boolean).length : 0),
    files: (sub = '') => readdirSync(join(dir, sub)).sort(),
    stop: () => {
      void pool?.close();
      stopSshd(join(dir, 'sshd'));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
