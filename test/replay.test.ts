// The determinism guard: real histories of full lab upgrades, replayed against today's workflow
// code. A change that would break an upgrade already running fails here; such a change must go
// behind patched() (docs/recovery.md says how).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { Worker, Runtime, DefaultLogger } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { workflowBundle } from './temporalEnv';

Runtime.install({ logger: new DefaultLogger('WARN') });
const dir = join(__dirname, 'histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.binpb'));

it('has recorded histories of full upgrades in both switch-over modes', () => {
  const parents = files.filter((f) => !decodeURIComponent(f).includes('/compute-batch'));
  expect(parents.length).toBeGreaterThanOrEqual(2);
  expect(files.some((f) => f.includes('compute-batch'))).toBe(true);
});

it('replays every recorded history without a nondeterminism error', async () => {
  const histories = files.map((f) => ({ workflowId: decodeURIComponent(f.split('~')[0]!), history: temporal.api.history.v1.History.decode(readFileSync(join(dir, f))) }));
  const results: { workflowId: string; error?: unknown }[] = [];
  // runReplayHistories yields a result per history and never throws: every error must be looked at.
  for await (const r of Worker.runReplayHistories({ workflowBundle: workflowBundle() }, histories)) results.push(r);
  expect(results.map((r) => [r.workflowId, r.error ? String(r.error) : null])).toEqual(histories.map((h) => [h.workflowId, null]));
  expect(results).toHaveLength(files.length);
});

it('fails when the workflow would act differently: a child workflow id that no longer matches', async () => {
  const parent = files.find((f) => !decodeURIComponent(f).includes('/compute-batch'))!;
  const history = temporal.api.history.v1.History.decode(readFileSync(join(dir, parent)));
  // Child ids derive from the workflow id, so replaying under another id is a changed workflow.
  await expect(Worker.runReplayHistory({ workflowBundle: workflowBundle() }, history, 'nova-upgrade-renamed')).rejects.toThrow(/Nondeterminism error: Child workflow id/);
});
