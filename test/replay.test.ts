// The determinism guard: real histories of full lab upgrades, replayed against today's workflow
// code. A change that would break an upgrade already running fails here; such a change must go
// behind patched() (docs/recovery.md says how).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { Worker, Runtime, DefaultLogger } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { workflowBundle } from './temporalEnv';

Runtime.install({ logger: new DefaultLogger('WARN') });
const dir = join(__dirname, 'histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

it('has recorded histories of full upgrades in both switch-over modes', () => {
  const parents = files.filter((f) => !f.includes('compute-batch'));
  expect(parents.length).toBeGreaterThanOrEqual(2);
  expect(files.some((f) => f.includes('compute-batch'))).toBe(true);
});

it('replays every recorded history without a nondeterminism error', async () => {
  const histories = files.map((f) => ({ workflowId: f.replace(/\.json$/, ''), history: historyFromJSON(JSON.parse(readFileSync(join(dir, f), 'utf8'))) }));
  const results: { workflowId: string; error?: unknown }[] = [];
  // runReplayHistories yields a result per history and never throws: every error must be looked at.
  for await (const r of Worker.runReplayHistories({ workflowBundle: workflowBundle() }, histories)) results.push(r);
  expect(results.map((r) => [r.workflowId, r.error ? String(r.error) : null])).toEqual(histories.map((h) => [h.workflowId, null]));
});
