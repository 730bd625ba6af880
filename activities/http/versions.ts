// nova's version documents: `GET /` lists every API version, `GET /v2.1/` describes one; both
// carry the max ("version") and min ("min_version") microversion the serving code supports.
import { cancellationSignal, heartbeat, sleep } from '../common';
import { httpGet, HttpRequestError } from './get';

export interface ApiVersion {
  id: string;
  maxMicroversion: string;
  minMicroversion: string;
  status: string;
}

interface VersionEntry {
  id?: unknown;
  version?: unknown;
  min_version?: unknown;
  status?: unknown;
}

function entryToVersion(e: VersionEntry): ApiVersion | undefined {
  if (typeof e.version !== 'string' || !/^\d+\.\d+$/.test(e.version)) return undefined;
  return {
    id: typeof e.id === 'string' ? e.id : '',
    maxMicroversion: e.version,
    minMicroversion: typeof e.min_version === 'string' ? e.min_version : '',
    status: typeof e.status === 'string' ? e.status : '',
  };
}

/**
 * Reads either document. From `/` it takes the v2.1 entry: v2.0 is listed too, with an
 * empty version, because v2.0 has no microversions.
 */
export function parseVersionDocument(doc: unknown): ApiVersion {
  const d = (typeof doc === 'string' ? JSON.parse(doc) : doc) as { versions?: unknown; version?: unknown } | null;
  if (d && Array.isArray(d.versions)) {
    const v21 = (d.versions as VersionEntry[]).find((v) => v && v.id === 'v2.1');
    const parsed = v21 && entryToVersion(v21);
    if (parsed) return parsed;
    throw new Error('the version list has no v2.1 entry with a microversion');
  }
  if (d && d.version && typeof d.version === 'object') {
    const parsed = entryToVersion(d.version as VersionEntry);
    if (parsed) return parsed;
  }
  throw new Error('not a nova version document');
}

/** Microversions are "major.minor" integer pairs: 2.100 is newer than 2.96. */
export function compareMicroversions(a: string, b: string): number {
  const [am, an] = a.split('.').map(Number);
  const [bm, bn] = b.split('.').map(Number);
  if ([am, an, bm, bn].some((n) => n === undefined || Number.isNaN(n)))
    throw new Error(`cannot compare microversions "${a}" and "${b}"`);
  return am! - bm! || an! - bn!;
}

export interface CheckApiServesVersionInput {
  node: string;
  /** The node's own nova-api URL (not the VIP): the one backend being brought back. */
  url: string;
  expectedMaxMicroversion?: string;
  timeoutMs: number;
  pollMs?: number;
  requestTimeoutMs?: number;
}

export interface CheckApiServesVersionResult {
  summary: string;
  node: string;
  url: string;
  maxMicroversion: string;
  minMicroversion: string;
  status: string;
  attempts: number;
}

/**
 * Waits until the node's nova-api serves its version document. The max microversion alone
 * cannot prove the new code runs (29.0.0 and 30.0.0 both advertise 2.96), so the workflow
 * also checks the installed code version on the node.
 */
export async function checkApiServesVersion(input: CheckApiServesVersionInput): Promise<CheckApiServesVersionResult> {
  const deadline = Date.now() + input.timeoutMs;
  let lastSeen = 'nothing yet';
  for (let attempts = 1; ; attempts++) {
    try {
      // Not cut to the time left: a last attempt starved of time would hide what the earlier ones saw.
      const res = await httpGet(input.url, { timeoutMs: input.requestTimeoutMs ?? 5000 });
      if (res.status >= 200 && res.status < 300) {
        const v = parseVersionDocument(res.body);
        if (
          !input.expectedMaxMicroversion ||
          compareMicroversions(v.maxMicroversion, input.expectedMaxMicroversion) === 0
        ) {
          return {
            summary: `nova-api on ${input.node} serves max microversion ${v.maxMicroversion} at ${input.url}`,
            node: input.node,
            url: input.url,
            ...v,
            attempts,
          };
        }
        lastSeen = `max microversion ${v.maxMicroversion}, expected ${input.expectedMaxMicroversion}`;
      } else {
        lastSeen = `HTTP ${res.status}`;
      }
    } catch (e) {
      lastSeen =
        e instanceof HttpRequestError ? `${e.kind}: ${e.message}` : `unreadable answer: ${(e as Error).message}`;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `nova-api on ${input.node} did not serve the expected version document at ${input.url} within ${input.timeoutMs / 1000} s; last saw ${lastSeen}`,
      );
    }
    heartbeat({ attempts, lastSeen });
    await sleep(Math.min(input.pollMs ?? 1000, Math.max(0, deadline - Date.now())), cancellationSignal());
  }
}

export function createVersionActivities() {
  return { checkApiServesVersion };
}
