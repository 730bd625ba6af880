// The lab's own look at its HAProxy through the admin socket: only to wait, at lab up, until
// the health checks have marked every nova-api UP, so the VIP answers from both at once.
import { createConnection } from 'node:net';

/** One command on a unix runtime socket, which HAProxy closes after answering. */
export function adminCommand(socket: string, command: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socket);
    let out = '';
    const timer = setTimeout(
      () => sock.destroy(new Error(`${socket} did not answer "${command}" within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on('connect', () => sock.end(`${command}\n`));
    sock.on('data', (d: Buffer) => (out += d.toString()));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** server name → status (UP, DOWN, MAINT, DRAIN, "UP 1/2", …) from `show stat`'s CSV. */
export async function backendServerStatus(socket: string, backend: string): Promise<Map<string, string>> {
  const csv = await adminCommand(socket, 'show stat');
  const [head, ...rows] = csv.split('\n');
  const cols = (head ?? '').replace(/^# /, '').split(',');
  const [px, sv, st] = ['pxname', 'svname', 'status'].map((c) => cols.indexOf(c));
  const out = new Map<string, string>();
  for (const r of rows) {
    const f = r.split(',');
    if (f[px!] === backend && f[sv!] !== 'BACKEND' && f[sv!] !== 'FRONTEND' && f[sv!]) out.set(f[sv!]!, f[st!] ?? '');
  }
  return out;
}

export async function waitForBackends(
  socket: string,
  backend: string,
  servers: string[],
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = new Map<string, string>();
  for (;;) {
    try {
      last = await backendServerStatus(socket, backend);
      if (servers.every((s) => last.get(s) === 'UP')) return;
    } catch {
      /* the socket appears a moment after the worker */
    }
    if (Date.now() > deadline)
      throw new Error(
        `HAProxy (${socket}) did not mark ${servers.join(', ')} UP within ${timeoutMs} ms: ${[...last].map(([k, v]) => `${k}=${v}`).join(', ') || 'no answer'}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}
