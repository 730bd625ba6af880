// Real sshd instances for SSH tests: each gets its own directory, address and free port, so
// test files can run in parallel forks without sharing state.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureKeyPair, startSshd, stopSshd, sshdPid, type KeyPair, type SshdHandle } from '../../lab/sshd';
import type { SshTarget } from '../../common/sshTarget';

export function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, address, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface LabNode {
  sshd: SshdHandle;
  /** The node's $HOME as its commands see it. */
  home: string;
  /** Holds exactly this node's known_hosts line unless a test rewrites it. */
  knownHostsPath: string;
  target(overrides?: Partial<SshTarget>): SshTarget;
  restart(): Promise<void>;
  stop(): void;
}

export class SshLab {
  readonly root = mkdtempSync(join(tmpdir(), 'nova-ssh-test-'));
  readonly clientKey: KeyPair = ensureKeyPair(join(this.root, 'client', 'id_ed25519'));
  private readonly dirs: string[] = [];

  /**
   * `authorizedKeys` replaces the lab client key as the only key allowed in; `extraConfig` adds
   * sshd_config lines (a HostCertificate, say).
   */
  async node(
    name: string,
    address = '127.0.0.1',
    opts: { maxSessions?: number; authorizedKeys?: string[]; extraConfig?: string[] } = {},
  ): Promise<LabNode> {
    const dir = join(this.root, name);
    this.dirs.push(dir);
    // Each node gets its own $HOME: run state stays apart, and bash finds no slow ~/.bashrc.
    const home = join(dir, 'home');
    mkdirSync(home, { recursive: true });
    const port = await freePort(address);
    const start = () =>
      startSshd({
        name,
        dir,
        address,
        port,
        authorizedKeys: (opts.authorizedKeys ?? [this.clientKey.publicKey]).join('\n'),
        maxSessions: opts.maxSessions,
        env: { HOME: home },
        extraConfig: opts.extraConfig,
      });
    const node: LabNode = {
      sshd: await start(),
      home,
      knownHostsPath: join(dir, 'known_hosts'),
      target: (overrides = {}) => ({
        node: name,
        host: address,
        port,
        username: 'root',
        privateKeyPath: this.clientKey.privateKeyPath,
        knownHostsPath: node.knownHostsPath,
        connectTimeoutMs: 5000,
        ...overrides,
      }),
      restart: async () => {
        node.stop();
        node.sshd = await start();
      },
      stop: () => {
        stopSshd(dir);
        const deadline = Date.now() + 3000;
        while (sshdPid(dir) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      },
    };
    writeFileSync(node.knownHostsPath, `${node.sshd.knownHostsLine}\n`);
    return node;
  }

  cleanup(): void {
    for (const dir of this.dirs) {
      try {
        stopSshd(dir, 'SIGCONT');
        stopSshd(dir);
      } catch {
        // Already gone.
      }
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}
