// nova-api for one lab node: a real HTTP server on the node's address that serves the version
// documents of the code it started with, plus a few slow-ish resource calls, and that shuts
// down the way devstack's uwsgi does: stop accepting, finish what is in flight, then exit.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { logEvent, type NodeEnv } from './env';
import { NOVA_UNITS } from './layout';

interface VersionDoc {
  version: { version: string; min_version: string };
}

const FLAVORS = [
  { id: '1', name: 'm1.tiny', ram: 512, disk: 1, vcpus: 1 },
  { id: '2', name: 'm1.small', ram: 2048, disk: 20, vcpus: 1 },
  { id: '3', name: 'm1.medium', ram: 4096, disk: 40, vcpus: 2 },
  { id: '4', name: 'm1.large', ram: 8192, disk: 80, vcpus: 4 },
  { id: '42', name: 'm1.nano', ram: 192, disk: 1, vcpus: 1 },
  { id: '84', name: 'm1.micro', ram: 256, disk: 1, vcpus: 1 },
];

const between = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

/** Microversions compare as integer pairs: 2.100 is newer than 2.96. */
function parseMicroversion(v: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)$/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}
const cmp = (a: [number, number], b: [number, number]) => a[0] - b[0] || a[1] - b[1];

export function runApi(env: NodeEnv, version: string, ready: () => void): void {
  const dir = env.state.fixtures;
  // Read now: a missing document must fail the start, not the first request.
  const rootDoc = readFileSync(join(dir, `root-${version}.json`), 'utf8');
  const v21Doc = readFileSync(join(dir, `v21-${version}.json`), 'utf8');
  const v21 = JSON.parse(v21Doc) as VersionDoc;
  const max = parseMicroversion(v21.version.version)!;
  const min = parseMicroversion(v21.version.min_version)!;
  const mercyMs = env.config.apiMercySeconds * 1000;
  let inFlight = 0;
  let stopping = false;

  const server = createServer((req, res) => {
    inFlight++;
    res.on('close', () => {
      inFlight--;
      if (stopping && inFlight === 0) finish('drained');
    });
    handle(req, res);
  });
  server.keepAliveTimeout = 5000;

  function send(res: ServerResponse, status: number, body: unknown, microversion?: string): void {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.statusCode = status;
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('x-openstack-request-id', `req-${randomUUID()}`);
    res.setHeader('X-Lab-Node', env.name);
    res.setHeader('X-Lab-Version', version);
    if (microversion) {
      res.setHeader('OpenStack-API-Version', `compute ${microversion}`);
      res.setHeader('X-OpenStack-Nova-API-Version', microversion);
      res.setHeader('Vary', 'OpenStack-API-Version, X-OpenStack-Nova-API-Version');
    }
    // A keep-alive connection would outlive the drain and hold the process open.
    if (stopping) res.setHeader('Connection', 'close');
    res.end(text);
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://lab');
    const host = req.headers.host ?? `${env.config.address}:${env.config.apiPort}`;
    // nova builds its links from the request's own host, so through the VIP they name the VIP.
    const rewrite = (doc: string) => doc.replaceAll('http://openstack.example.com', `http://${host}`);
    const delay = url.searchParams.has('delay_ms') ? Number(url.searchParams.get('delay_ms')) || 0 : undefined;
    const later = (lo: number, hi: number, fn: () => void) => setTimeout(fn, delay ?? between(lo, hi));
    const path = url.pathname;

    if (path === '/' || path === '') return void later(0, 2, () => send(res, 200, rewrite(rootDoc)));
    if (path === '/v2.1' || path === '/v2.1/') return void later(0, 2, () => send(res, 200, rewrite(v21Doc)));
    if (!path.startsWith('/v2.1/'))
      return void later(0, 2, () =>
        send(res, 404, { itemNotFound: { code: 404, message: 'The resource could not be found.' } }),
      );

    const asked =
      String(req.headers['openstack-api-version'] ?? '').replace(/^compute\s+/i, '') ||
      String(req.headers['x-openstack-nova-api-version'] ?? '');
    let micro = '2.1';
    if (asked === 'latest') micro = v21.version.version;
    else if (asked) {
      const mv = parseMicroversion(asked);
      if (!mv || cmp(mv, min) < 0 || cmp(mv, max) > 0) {
        const message = `Version ${asked} is not supported by the API. Minimum is ${v21.version.min_version} and maximum is ${v21.version.version}.`;
        return void later(0, 2, () => send(res, 406, { computeFault: { code: 406, message } }, v21.version.version));
      }
      micro = asked;
    }
    const link = (kind: string, id: string) => [{ href: `http://${host}/v2.1/${kind}/${id}`, rel: 'self' }];
    const flavor = (f: (typeof FLAVORS)[number]) => ({
      ...f,
      links: link('flavors', f.id),
      'OS-FLV-DISABLED:disabled': false,
      'os-flavor-access:is_public': true,
      swap: 0,
      rxtx_factor: 1.0,
      'OS-FLV-EXT-DATA:ephemeral': 0,
    });
    const rest = path.slice('/v2.1/'.length).replace(/\/+$/, '');
    if (rest === 'servers' || rest === 'servers/detail')
      return void later(50, 300, () => send(res, 200, { servers: [] }, micro));
    if (rest === 'flavors')
      return void later(20, 100, () =>
        send(
          res,
          200,
          { flavors: FLAVORS.map((f) => ({ id: f.id, name: f.name, links: link('flavors', f.id) })) },
          micro,
        ),
      );
    if (rest === 'flavors/detail')
      return void later(20, 100, () => send(res, 200, { flavors: FLAVORS.map(flavor) }, micro));
    const one = /^flavors\/([^/]+)$/.exec(rest);
    if (one) {
      const f = FLAVORS.find((x) => x.id === one[1]);
      return void later(20, 100, () =>
        f
          ? send(res, 200, { flavor: flavor(f) }, micro)
          : send(res, 404, { itemNotFound: { code: 404, message: `Flavor ${one[1]} could not be found.` } }, micro),
      );
    }
    later(0, 2, () =>
      send(res, 404, { itemNotFound: { code: 404, message: 'The resource could not be found.' } }, micro),
    );
  }

  let finished = false;
  function finish(how: string): void {
    if (finished) return;
    finished = true;
    logEvent(env, 'exit', NOVA_UNITS.api, { pid: process.pid, version, how });
    process.exit(0);
  }

  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    // Closing the listener refuses new connections at once; idle keep-alives go too.
    server.close();
    server.closeIdleConnections();
    if (inFlight === 0) return finish('idle');
    setTimeout(() => {
      // Past the mercy timeout uwsgi kills its workers: whatever is still in flight is lost.
      server.closeAllConnections();
      finish('mercy-expired');
    }, mercyMs).unref();
  });

  server.on('error', (err) => {
    process.stderr.write(`nova-api on ${env.config.address}:${env.config.apiPort}: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(env.config.apiPort, env.config.address, ready);
}
