// A real OpenSSH sshd for one lab node or one test: its own host key, its own address and
// port, and an environment that points the node's commands at its own root.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';

export const SSHD_BIN = '/usr/sbin/sshd';

export interface KeyPair {
  privateKeyPath: string;
  publicKey: string;
}

/** An ed25519 key pair, made once and reused: regenerating would invalidate known_hosts. */
export function ensureKeyPair(path: string, comment = 'nova-upgrade-lab'): KeyPair {
  if (!existsSync(path)) {
    mkdirSync(join(path, '..'), { recursive: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path], { stdio: 'ignore' });
  }
  return { privateKeyPath: path, publicKey: readFileSync(`${path}.pub`, 'utf8').trim() };
}

export interface SshdOptions {
  name: string;
  /** Holds the config, host key, pid file and log; created if missing. */
  dir: string;
  address: string;
  port: number;
  /** Public keys allowed to log in, one per line. */
  authorizedKeys: string;
  /** Set in every session (sshd's SetEnv overrides the login defaults, PATH included). */
  env?: Record<string, string>;
  /** sshd's MaxSessions (channels per connection); OpenSSH's own default is 10. */
  maxSessions?: number;
  /**
   * Runs sshd under `ip netns exec NS`, so sessions see that namespace's network stack. The
   * address is then one inside the namespace, which this process cannot connect to: readiness
   * is sshd's pid file, written once it listens.
   */
  netns?: string;
  /** More sshd_config lines, e.g. `HostCertificate /path/key-cert.pub`. */
  extraConfig?: string[];
}

export interface SshdHandle {
  name: string;
  address: string;
  port: number;
  pid: number;
  dir: string;
  hostPublicKey: string;
  /** The line for a known_hosts file, in OpenSSH's `[host]:port` form for a non-22 port. */
  knownHostsLine: string;
}

function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const sock = createConnection({ host, port });
      sock.once('connect', () => {
        sock.destroy();
        resolve();
      });
      sock.once('error', () => {
        sock.destroy();
        if (Date.now() > deadline)
          reject(new Error(`sshd on ${host}:${port} did not start listening within ${timeoutMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

async function waitForPidFile(dir: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!sshdPid(dir)) {
    if (Date.now() > deadline)
      throw new Error(`sshd in ${dir} wrote no pid file within ${timeoutMs} ms (see ${join(dir, 'sshd.log')})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function knownHostsEntry(address: string, port: number, hostPublicKey: string): string {
  const [type, key] = hostPublicKey.split(/\s+/);
  const host = port === 22 ? address : `[${address}]:${port}`;
  return `${host} ${type} ${key}`;
}

export function sshdPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dir, 'sshd.pid'), 'utf8').trim());
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** Starts sshd detached (it outlives the caller, as a lab must); a running one is reused. */
export async function startSshd(opts: SshdOptions): Promise<SshdHandle> {
  mkdirSync(opts.dir, { recursive: true });
  // Debian's sshd refuses to start without its privilege-separation directory.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(opts.dir, 'ssh_host_ed25519_key');
  if (!existsSync(hostKey)) {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${opts.name}-host`, '-f', hostKey], {
      stdio: 'ignore',
    });
  }
  const hostPublicKey = readFileSync(`${hostKey}.pub`, 'utf8').trim();
  const authorizedKeysPath = join(opts.dir, 'authorized_keys');
  writeFileSync(authorizedKeysPath, `${opts.authorizedKeys.trim()}\n`, { mode: 0o600 });
  const pidFile = join(opts.dir, 'sshd.pid');
  const env = Object.entries(opts.env ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const config = [
    `ListenAddress ${opts.address}:${opts.port}`,
    `HostKey ${hostKey}`,
    `PidFile ${pidFile}`,
    `AuthorizedKeysFile ${authorizedKeysPath}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PermitRootLogin prohibit-password',
    'UsePAM no',
    // The lab's files live under the project directory, whose modes sshd would otherwise judge.
    'StrictModes no',
    'PrintMotd no',
    `MaxSessions ${opts.maxSessions ?? 64}`,
    'MaxStartups 64:30:128',
    'LogLevel INFO',
    ...(env ? [`SetEnv ${env}`] : []),
    ...(opts.extraConfig ?? []),
    '',
  ].join('\n');
  const configPath = join(opts.dir, 'sshd_config');
  writeFileSync(configPath, config);

  const running = sshdPid(opts.dir);
  if (running) {
    return {
      name: opts.name,
      address: opts.address,
      port: opts.port,
      pid: running,
      dir: opts.dir,
      hostPublicKey,
      knownHostsLine: knownHostsEntry(opts.address, opts.port, hostPublicKey),
    };
  }
  rmSync(pidFile, { force: true });
  execFileSync(SSHD_BIN, ['-t', '-f', configPath], { stdio: 'pipe' });
  const args = ['-D', '-f', configPath, '-E', join(opts.dir, 'sshd.log')];
  // `ip netns exec` execs sshd in place, so the child's pid is sshd's.
  const child = opts.netns
    ? spawn('ip', ['netns', 'exec', opts.netns, SSHD_BIN, ...args], { detached: true, stdio: 'ignore' })
    : spawn(SSHD_BIN, args, { detached: true, stdio: 'ignore' });
  child.unref();
  if (opts.netns) await waitForPidFile(opts.dir, 5000);
  else await waitForPort(opts.address, opts.port, 5000);
  return {
    name: opts.name,
    address: opts.address,
    port: opts.port,
    pid: child.pid!,
    dir: opts.dir,
    hostPublicKey,
    knownHostsLine: knownHostsEntry(opts.address, opts.port, hostPublicKey),
  };
}

/** Per-connection sshd processes: they call setsid(), so they are not in the listener's group. */
function childPids(parent: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name may hold spaces and parentheses; fields resume after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) children.push(Number(entry));
    } catch {
      // The process exited while we looked.
    }
  }
  return children;
}

/** Stops the listener and ends its open connections, as a node going down would. */
export function stopSshd(dir: string, signal: NodeJS.Signals = 'SIGTERM'): void {
  const pid = sshdPid(dir);
  if (!pid) return;
  const connections = childPids(pid);
  try {
    process.kill(-pid, signal);
  } catch {
    process.kill(pid, signal);
  }
  for (const child of connections) {
    try {
      process.kill(child, signal);
    } catch {
      // Already gone.
    }
  }
}
