// Small HTTP servers standing in for nova-api behind a real HAProxy. Each answers with its own
// name, so a test can tell which server a request went to, and `GET /` is the health check.
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createNetServer } from 'node:net';

export interface Backend {
  name: string;
  port: number;
  /** Requests served other than health checks. */
  served(): number;
  inFlight(): number;
  /** When the health check of the LB named `lb` last reached this server (ms since epoch; 0 = never). */
  lastCheckAt(lb: string): number;
  /** Unhealthy: the health check gets 503 (the server itself keeps answering other paths). */
  setHealthy(healthy: boolean): void;
  close(): Promise<void>;
}

/** `GET /slow?ms=N` answers after N ms; anything else (the health check) at once. */
export async function startBackend(name: string): Promise<Backend> {
  let served = 0;
  let inFlight = 0;
  let healthy = true;
  const lastCheckAt = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/') {
      lastCheckAt.set(String(req.headers['x-lb'] ?? ''), Date.now());
      res.writeHead(healthy ? 200 : 503, { 'content-type': 'text/plain', 'x-served-by': name });
      res.end(name);
      return;
    }
    inFlight++;
    const ms = Number(url.searchParams.get('ms') ?? 0);
    setTimeout(() => {
      inFlight--;
      served++;
      res.writeHead(200, { 'content-type': 'text/plain', 'x-served-by': name });
      res.end(name);
    }, ms);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    served: () => served,
    inFlight: () => inFlight,
    lastCheckAt: (lb) => lastCheckAt.get(lb) ?? 0,
    setHealthy: (h) => (healthy = h),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export async function startBackends(names: string[]): Promise<Backend[]> {
  return Promise.all(names.map(startBackend));
}

/** A port nothing listens on right now (bound and released by the kernel's choice). */
export async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export interface Reply {
  status: number;
  servedBy: string;
  ms: number;
}

/** One request through the frontend, on a fresh connection so no keep-alive skews balancing. */
export function get(port: number, path: string): Promise<Reply> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          servedBy: String(res.headers['x-served-by'] ?? ''),
          ms: Date.now() - started,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

export interface LbServer {
  name: string;
  port: number;
  weight?: number;
  /** Health check interval; 200ms unless a test needs a slow one. */
  inter?: string;
}

export interface HaproxyLbConfig {
  /** Sent by the health check as x-lb, so a backend knows which LB checked it when. */
  name: string;
  dir: string;
  frontendPort: number;
  tcpPort: number;
  backend: string;
  servers: LbServer[];
}

/**
 * An LB like the lab's: admin unix and TCP stats sockets, plus one at level operator for
 * Permission denied. Health checks every 200ms so state changes show within a second.
 */
export function haproxyLbConfig(c: HaproxyLbConfig): string {
  return `global
  stats socket ${c.dir}/admin.sock mode 600 level admin
  stats socket ${c.dir}/operator.sock mode 600 level operator
  stats socket ipv4@127.0.0.1:${c.tcpPort} level admin
  stats timeout 10s

defaults
  mode http
  retries 3
  option redispatch
  timeout connect 1s
  timeout client 15s
  timeout server 15s
  timeout queue 5s

frontend api
  bind 127.0.0.1:${c.frontendPort}
  default_backend ${c.backend}

backend ${c.backend}
  balance roundrobin
  option httpchk GET /
  http-check send hdr x-lb ${c.name}
  http-check expect status 200
${c.servers.map((s) => `  server ${s.name} 127.0.0.1:${s.port} check inter ${s.inter ?? '200ms'} weight ${s.weight ?? 1}`).join('\n')}
`;
}
