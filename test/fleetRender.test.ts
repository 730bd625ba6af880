// watch and status at fleet size: one line per step cut to the terminal's width, compute
// batches as aggregates with an ETA, failed nodes by name.
import { describe, expect, it } from 'vitest';
import type { Progress, StepState } from '../common/messages';
import { progressTable, watchView } from '../client/render';

function fleetProgress(batches: number, done: number): Progress {
  const steps: StepState[] = [
    {
      id: 'backup',
      phase: 'during-window',
      title: 'back up the databases',
      status: 'succeeded',
      attempts: 1,
      operatorRetries: 0,
      summary: `saved to /var/backups/nova-upgrade/${'very-long-directory-name/'.repeat(8)}nova.sql.gz`,
    },
  ];
  const t0 = Date.parse('2026-11-30T10:00:00Z');
  for (let i = 1; i <= batches; i++)
    steps.push({
      id: `compute-batch:${i}`,
      phase: 'during-window',
      title: `upgrade nova-compute batch ${i}/${batches} (c${i * 5 - 4}, c${i * 5 - 3}, c${i * 5 - 2}, c${i * 5 - 1}, c${i * 5})`,
      status: i <= done ? 'succeeded' : i === done + 1 ? 'running' : 'pending',
      attempts: i <= done + 1 ? 1 : 0,
      operatorRetries: 0,
    });
  return {
    workflowId: 'nova-upgrade-big',
    cloud: 'big',
    from: '30.0.0',
    to: '31.0.0',
    status: 'running',
    phase: 'during-window',
    currentStep: `compute-batch:${done + 1}`,
    approvals: [],
    steps,
    warnings: [],
    abortRequested: false,
    compute: {
      nodesDone: done * 5 - 1,
      nodesTotal: batches * 5,
      batchesDone: done,
      batchesTotal: batches,
      batches: [
        ...Array.from({ length: done }, (_, k) => ({
          index: k + 1,
          nodes: 5,
          done: k === 2 ? 4 : 5,
          failed: k === 2 ? 1 : 0,
          skipped: k === 2 ? 1 : 0,
          status: 'done' as const,
          startedAt: new Date(t0 + k * 60_000).toISOString(),
          endedAt: new Date(t0 + (k + 1) * 60_000).toISOString(),
        })),
        { index: done + 1, nodes: 5, done: 0, failed: 0, skipped: 0, status: 'running' as const },
      ],
      failedNodes: [
        { node: 'c13', host: 'c13', batch: 3, stage: 'install nova 31.0.0 on c13', error: 'exit 1', status: 'skipped' },
      ],
    },
  };
}

describe('watch and status at fleet size', () => {
  it('shows 200 batches as one aggregate line, each line within the width, the failed node by name', () => {
    const p = fleetProgress(200, 40);
    const table = progressTable(p, { width: 100 });
    const lines = table.split('\n');
    for (const l of lines) expect([...l].length, l).toBeLessThanOrEqual(100);
    expect(lines.length).toBeLessThan(15);
    expect(table).toMatch(/upgrade nova-compute batches +40\/200 +1 running/);
    expect(table).toMatch(
      /computes: 40\/200 batches done, 199\/1000 nodes, running: batch 41, 1 failed node, ETA \d+ min/,
    );
    expect(table).toContain('  skipped: c13 (batch 3, install nova 31.0.0 on c13)');
    // The long summary is cut, not wrapped.
    expect(lines.find((l) => l.includes('back up the databases'))).toMatch(/…$/);
    const view = watchView(p, [], 80);
    for (const l of view.split('\n')) expect([...l].length, l).toBeLessThanOrEqual(80);
  });

  it('keeps one line per batch for a small cloud', () => {
    const table = progressTable(fleetProgress(3, 1));
    expect(table.split('\n').filter((l) => l.includes('upgrade nova-compute batch ')).length).toBe(3);
  });
});
