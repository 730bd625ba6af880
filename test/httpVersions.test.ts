// The version parser on the real documents nova serves, one pair per release tag.
import { readFileSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkApiServesVersion, compareMicroversions, parseVersionDocument } from '../activities/http/versions';

const DIR = '/work/shared/fixtures/nova-versions';
const MAX_BY_TAG: Record<string, string> = {
  '20.0.0': '2.79',
  '21.0.0': '2.87',
  '24.0.0': '2.90',
  '27.0.0': '2.95',
  '29.0.0': '2.96',
  '30.0.0': '2.96',
  '31.0.0': '2.100',
  '33.0.0': '2.103',
};
const doc = (file: string) => readFileSync(join(DIR, file), 'utf8');

describe('parseVersionDocument', () => {
  it('has a fixture pair for every tag', () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));
    for (const tag of Object.keys(MAX_BY_TAG))
      expect(files).toEqual(expect.arrayContaining([`root-${tag}.json`, `v21-${tag}.json`]));
  });

  for (const [tag, max] of Object.entries(MAX_BY_TAG)) {
    it(`reads ${max} from both documents of ${tag}`, () => {
      const root = parseVersionDocument(JSON.parse(doc(`root-${tag}.json`)));
      const v21 = parseVersionDocument(doc(`v21-${tag}.json`));
      expect(root).toEqual({ id: 'v2.1', maxMicroversion: max, minMicroversion: '2.1', status: 'CURRENT' });
      expect(v21).toEqual(root);
    });
  }

  it('refuses what is not a version document', () => {
    expect(() => parseVersionDocument({ versions: [{ id: 'v2.0', version: '' }] })).toThrow(/no v2.1/);
    expect(() => parseVersionDocument({ error: 'x' })).toThrow(/not a nova version document/);
    expect(() => parseVersionDocument(null)).toThrow();
  });
});

describe('compareMicroversions', () => {
  it('compares as integer pairs', () => {
    expect(compareMicroversions('2.100', '2.96')).toBeGreaterThan(0);
    expect(compareMicroversions('2.96', '2.100')).toBeLessThan(0);
    expect(compareMicroversions('2.96', '2.96')).toBe(0);
    expect(compareMicroversions('3.1', '2.103')).toBeGreaterThan(0);
    const sorted = Object.values(MAX_BY_TAG).sort(compareMicroversions);
    expect(sorted).toEqual(['2.79', '2.87', '2.90', '2.95', '2.96', '2.96', '2.100', '2.103']);
    expect(() => compareMicroversions('latest', '2.1')).toThrow();
  });
});

describe('checkApiServesVersion', () => {
  let server: Server;
  let base = '';
  let serving: string | null = null;

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (!serving) {
        res.writeHead(503).end('Service Unavailable');
        return;
      }
      const file = req.url === '/v2.1/' ? `v21-${serving}.json` : `root-${serving}.json`;
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(doc(file));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('waits until the node serves the expected max microversion', async () => {
    serving = null;
    setTimeout(() => (serving = '30.0.0'), 150);
    setTimeout(() => (serving = '31.0.0'), 400);
    const r = await checkApiServesVersion({
      node: 'apicomp',
      url: `${base}/`,
      expectedMaxMicroversion: '2.100',
      timeoutMs: 5000,
      pollMs: 50,
    });
    expect(r.maxMicroversion).toBe('2.100');
    expect(r.attempts).toBeGreaterThan(2);
    expect(r.summary).toBe(`nova-api on apicomp serves max microversion 2.100 at ${base}/`);
  });

  it('accepts any version document when no microversion is expected', async () => {
    serving = '29.0.0';
    const r = await checkApiServesVersion({ node: 'apicomp', url: `${base}/v2.1/`, timeoutMs: 2000 });
    expect(r.maxMicroversion).toBe('2.96');
  });

  it('times out with a retryable error naming the node, the URL and what it saw', async () => {
    serving = '30.0.0';
    const err = await checkApiServesVersion({
      node: 'apicomp',
      url: `${base}/`,
      expectedMaxMicroversion: '2.100',
      timeoutMs: 300,
      pollMs: 50,
    }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(
      `nova-api on apicomp did not serve the expected version document at ${base}/`,
    );
    expect((err as Error).message).toContain('last saw max microversion 2.96, expected 2.100');
    expect((err as { nonRetryable?: boolean }).nonRetryable).toBeUndefined();
  });

  it('says when nothing listens', async () => {
    const err = await checkApiServesVersion({
      node: 'apicomp',
      url: 'http://127.0.0.1:1/',
      timeoutMs: 200,
      pollMs: 50,
    }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/last saw connection: ECONNREFUSED/);
  });
});
