// The determinism guard. Every kept release's corpus (test/histories/<release>/<path>/, written
// by scripts/record-corpus.ts on the release's own commit, plus real lab runs) is replayed
// against today's workflow code: a change that would break an upgrade already running on that
// release fails here, and must go behind patched() (docs/contributing.md says how). Kept
// histories are never deleted.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Worker, Runtime, DefaultLogger } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { workflowBundle } from './temporalEnv';

Runtime.install({ logger: new DefaultLogger('WARN') });
const root = join(__dirname, 'histories');
const isDir = (p: string) => statSync(p).isDirectory();
const releases = readdirSync(root).filter((d) => /^\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$/.test(d) && isDir(join(root, d)));

interface Recorded {
  file: string;
  workflowId: string;
  history: temporal.api.history.v1.History;
}

function load(dir: string): Recorded[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.binpb'))
    .map((f) => ({
      file: f,
      workflowId: decodeURIComponent(f.split('~')[0]!),
      history: temporal.api.history.v1.History.decode(readFileSync(join(dir, f))),
    }));
}

async function replay(histories: Recorded[]): Promise<[string, string | null][]> {
  const out: [string, string | null][] = [];
  // runReplayHistories yields a result per history and never throws: every error must be looked at.
  for await (const r of Worker.runReplayHistories({ workflowBundle: workflowBundle() }, histories)) {
    out.push([r.workflowId, r.error ? String(r.error) : null]);
  }
  return out;
}

// Every path an upgrade can be in when a new worker takes it over.
const PATHS = [
  'happy-rolling',
  'happy-monotonic',
  'gates-manual',
  'hold-retry',
  'skip',
  'shutdown-sessions',
  'batch-retry',
];
const MORE = [
  'abort-in-window',
  'abort-at-gate',
  'window-hold',
  'webhook-gate',
  'lb-setup-hold-retry',
  'lab-rolling',
  'lab-monotonic',
];

it('keeps the 0.1.0 corpus with every path', () => {
  expect(releases).toContain('0.1.0');
  const kept = readdirSync(join(root, '0.1.0'));
  for (const p of [...PATHS, ...MORE]) expect(kept, `test/histories/0.1.0/${p}`).toContain(p);
});

describe.each(releases)('release %s', (release) => {
  const paths = readdirSync(join(root, release)).filter((p) => isDir(join(root, release, p)));
  it.each(paths)('replays %s without a nondeterminism error', async (path) => {
    const histories = load(join(root, release, path));
    expect(histories.length, `${release}/${path} has no histories`).toBeGreaterThan(0);
    expect(await replay(histories)).toEqual(histories.map((h) => [h.workflowId, null]));
  });
});

// 0.1.0 kept its lab histories at the top of test/histories/; they stay there, and replay too.
it('replays the histories kept where 0.1.0 recorded them', async () => {
  const histories = load(root);
  expect(histories.length).toBe(6);
  expect(await replay(histories)).toEqual(histories.map((h) => [h.workflowId, null]));
});

describe('a change that is not behind patched() fails the replay', () => {
  it('the probe-stop change of 355dcd5, which shipped unpatched, fails the histories recorded before it', async () => {
    // Recorded at 4d34c17, a development build before 0.1.0: the probe was stopped by cancelling
    // its activity. 355dcd5 stopped it with a flag and a timer, without patched(). An upgrade of
    // that build sitting in its window would be stuck on a new worker: this is what the guard
    // above exists to catch. Kept, never deleted, as the proof that the guard can fail.
    const dir = join(root, 'unreleased-4d34c17');
    expect(existsSync(dir)).toBe(true);
    const histories = load(dir);
    const results = await replay(histories);
    const parents = results.filter(([id]) => !id.includes('/compute-batch'));
    expect(parents).toHaveLength(2);
    for (const [, error] of parents) expect(error).toMatch(/Nondeterminism|TMPRL1100/);
    // The children did not change: they still replay.
    for (const [, error] of results.filter(([id]) => id.includes('/compute-batch'))) expect(error).toBeNull();
  });

  it('a child workflow id that no longer matches', async () => {
    const dir = join(root, '0.1.0', 'happy-rolling');
    const parent = load(dir).find((h) => !h.workflowId.includes('/compute-batch'))!;
    // Child ids derive from the workflow id, so replaying under another id is a changed workflow.
    await expect(
      Worker.runReplayHistory({ workflowBundle: workflowBundle() }, parent.history, 'nova-upgrade-renamed'),
    ).rejects.toThrow(/Nondeterminism error: Child workflow id/);
  });
});
