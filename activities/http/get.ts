// One HTTP request (a GET, or the probe's keystone and keypair calls) with a hard deadline, on
// node's own http/https: no retries, no redirects, no shared pool, so every failure is seen as
// it happened.
import http from 'node:http';
import https from 'node:https';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type HttpFailureKind = 'connection' | 'timeout';

export class HttpRequestError extends Error {
  constructor(
    readonly kind: HttpFailureKind,
    message: string,
  ) {
    super(message);
    this.name = 'HttpRequestError';
  }
}

export interface GetOptions {
  timeoutMs: number;
  headers?: Record<string, string>;
  agent?: http.Agent;
  /** Bodies larger than this are cut: version documents are small. */
  maxBodyBytes?: number;
}

export function httpGet(url: string, opts: GetOptions): Promise<HttpResponse> {
  return httpRequest('GET', url, opts);
}

export interface RequestOptions extends GetOptions {
  /** Sent as JSON. */
  json?: unknown;
}

export function httpRequest(method: string, url: string, opts: RequestOptions): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const lib = u.protocol === 'https:' ? https : http;
    const max = opts.maxBodyBytes ?? 1 << 20;
    let settled = false;
    const fail = (kind: HttpFailureKind, message: string) => {
      if (settled) return;
      settled = true;
      reject(new HttpRequestError(kind, message));
    };
    const body = opts.json === undefined ? undefined : JSON.stringify(opts.json);
    const headers: Record<string, string> = {
      Accept: 'application/json',
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...opts.headers,
    };
    const req = lib.request(u, { method, headers, agent: opts.agent }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < max) chunks.push(c);
        size += c.length;
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (e) => fail('connection', e.message));
      res.on('aborted', () => fail('connection', 'response aborted'));
    });
    const timer = setTimeout(() => {
      fail('timeout', `no complete response within ${opts.timeoutMs} ms`);
      req.destroy();
    }, opts.timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      fail('connection', e.code ? `${e.code}: ${e.message}` : e.message);
    });
    req.end(body);
  });
}
