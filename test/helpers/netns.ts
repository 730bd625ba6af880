// Hosts with their own network stack for tests: network namespaces made here, joined by a veth
// pair, with addresses that exist only inside them. Nothing is sent to any address outside
// these namespaces or 127.0.0.0/8: the test reaches an in-namespace sshd through a forward
// from a root-namespace loopback port, bridged by `ip netns exec NS socat`.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface NetnsHost {
  /** Namespace name, unique to this test process. */
  ns: string;
  /** Address on `iface` inside the namespace. */
  address: string;
  iface: string;
}

export interface NetnsPair {
  hosts: [NetnsHost, NetnsHost];
  prefixLength: number;
  /** Processes started in the namespaces through these helpers. */
  children: ChildProcess[];
  destroy(): void;
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs a command inside the namespace and returns its stdout. */
export function inNetns(ns: string, cmd: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Every process left in the namespace: started by this test, through its sshd or helpers. */
function pidsIn(ns: string): number[] {
  try {
    return ip('netns', 'pids', ns).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function killNamespaceProcesses(ns: string): void {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const pids = pidsIn(ns);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, signal);
      } catch {
        // Already gone.
      }
    }
    if (pids.length && signal === 'SIGTERM') execFileSync('sleep', ['0.5']);
  }
}

/**
 * Two namespaces `<tag>-a` and `<tag>-b`, a veth pair between them named `iface` on both sides,
 * addresses `<subnet>.1` and `<subnet>.2`, loopback up. `subnet` is three octets of a private
 * range, e.g. "10.250.7"; the addresses never exist outside the namespaces.
 */
export function createNetnsPair(tag: string, subnet: string, iface = 'lb0'): NetnsPair {
  const names = [`${tag}-a`, `${tag}-b`] as const;
  const children: ChildProcess[] = [];
  const destroy = () => {
    for (const c of children)
      if (c.exitCode === null && c.pid)
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
    for (const ns of names) {
      killNamespaceProcesses(ns);
      try {
        ip('netns', 'del', ns);
      } catch {
        // Never made, or already removed.
      }
    }
  };
  destroy();
  try {
    for (const ns of names) ip('netns', 'add', ns);
    // Kernel names of the pair are unique host-wide only until they move into the namespaces.
    const [va, vb] = [`${tag.slice(0, 10)}a`, `${tag.slice(0, 10)}b`];
    ip('link', 'add', va, 'type', 'veth', 'peer', 'name', vb);
    ip('link', 'set', va, 'netns', names[0]);
    ip('link', 'set', vb, 'netns', names[1]);
    names.forEach((ns, i) => {
      ip('-n', ns, 'link', 'set', i === 0 ? va : vb, 'name', iface);
      ip('-n', ns, 'addr', 'add', `${subnet}.${i + 1}/24`, 'dev', iface);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'link', 'set', iface, 'up');
    });
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    hosts: [
      { ns: names[0], address: `${subnet}.1`, iface },
      { ns: names[1], address: `${subnet}.2`, iface },
    ],
    prefixLength: 24,
    children,
    destroy,
  };
}

/** Starts a long-running process inside the namespace, killed by destroy(). */
export function spawnInNetns(pair: NetnsPair, ns: string, cmd: string, args: string[]): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  pair.children.push(child);
  return child;
}

export interface Forward {
  port: number;
  close(): Promise<void>;
}

/**
 * <listen>:<port> in this namespace (default 127.0.0.1) → <innerHost>:<innerPort> inside `ns`.
 * Each connection is one `socat` run inside the namespace; nothing listens on any other address.
 */
export async function forwardIntoNetns(
  ns: string,
  innerPort: number,
  listen = '127.0.0.1',
  innerHost = '127.0.0.1',
): Promise<Forward> {
  const bridges = new Set<ChildProcess>();
  const server: Server = createServer((sock) => {
    const bridge = spawn('ip', ['netns', 'exec', ns, 'socat', 'STDIO', `TCP:${innerHost}:${innerPort}`], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    bridges.add(bridge);
    sock.pipe(bridge.stdin!);
    bridge.stdout!.pipe(sock);
    const end = () => {
      sock.destroy();
      if (bridge.exitCode === null) bridge.kill('SIGTERM');
      bridges.delete(bridge);
    };
    sock.on('error', end);
    sock.on('close', end);
    // A client that hangs up early (a host-certificate probe does) leaves socat gone mid-write.
    bridge.stdin!.on('error', end);
    bridge.stdout!.on('error', end);
    bridge.on('exit', () => sock.end());
  });
  await new Promise<void>((r) => server.listen(0, listen, r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const b of bridges) b.kill('SIGTERM');
        server.close(() => r());
      }),
  };
}

/** Which of the hosts hold `address` on their interfaces now. */
export function holdersOf(hosts: NetnsHost[], address: string): string[] {
  return hosts.filter((h) => ip('-n', h.ns, '-o', '-4', 'addr', 'show').includes(` inet ${address}/`)).map((h) => h.ns);
}
