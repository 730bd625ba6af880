// watch and status at fleet size: one line per step cut to the terminal's width, compute
// batches as aggregates with an ETA, failed nodes by name.
import { describe, expect, it } from 'vitest';
import type { Progress, StepState } from '../common/messages';
import { progressTable, watchView } from '../client/render';
import { isBatchStepId, progressAnswer, succeededSteps } from '../common/progressAnswer';

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

describe('the progress answer at fleet size', () => {
  /** 10,000 computes in 201 batches after the last one, 1% of the nodes failed and skipped (bench/fleet-plan.ts). */
  function atTenThousand(): Progress {
    const p = fleetProgress(201, 201);
    p.steps.push(
      ...Array.from({ length: 201 }, (_, i): StepState => ({
        id: `hup-computes:${i + 1}`,
        phase: 'after-window',
        title: `SIGHUP nova-compute batch ${i + 1}/201 (${'cmp1234, '.repeat(50)})`,
        status: 'succeeded',
        attempts: 1,
        operatorRetries: 0,
        summary: 'x'.repeat(400),
      })),
    );
    for (const s of p.steps) s.summary = 'x'.repeat(400);
    p.compute.failedNodes = Array.from({ length: 100 }, (_, i) => ({
      node: `cmp${i * 100}`,
      host: `cmp${i * 100}`,
      batch: 1 + Math.floor(i / 2),
      stage: `install nova 31.0.0 on cmp${i * 100}`,
      error: 'e'.repeat(2000),
      status: i === 99 ? 'held' : 'skipped',
      reason: 'broken disk',
      by: 'alice',
    }));
    p.compute.batches!.pop(); // fleetProgress's next, running batch: there is none after the last
    p.compute.batches![200]!.status = 'held';
    p.steps.find((s) => s.id === 'compute-batch:201')!.status = 'held';
    return p;
  }

  it('stays under 256 KiB with batch steps counted, failed nodes listed to a limit, and says where the rest is', () => {
    const p = atTenThousand();
    expect(Buffer.byteLength(JSON.stringify(p))).toBeGreaterThan(256 * 1024);
    const a = progressAnswer(p);
    const bytes = Buffer.byteLength(JSON.stringify(a));
    console.log(
      `progress answer at 10,000 computes: ${(bytes / 1024).toFixed(1)} KiB (whole state ${(Buffer.byteLength(JSON.stringify(p)) / 1024).toFixed(1)} KiB)`,
    );
    expect(bytes).toBeLessThan(64 * 1024);
    // The first batch step of each kind (where its aggregate line goes) and the held one.
    expect(a.steps.filter((s) => isBatchStepId(s.id)).map((s) => s.id)).toEqual([
      'compute-batch:1',
      'compute-batch:201',
      'hup-computes:1',
    ]);
    expect(a.batchSteps).toEqual([
      { phase: 'during-window', kind: 'compute-batch', total: 201, byStatus: { succeeded: 200, held: 1 } },
      { phase: 'after-window', kind: 'hup-computes', total: 201, byStatus: { succeeded: 201 } },
    ]);
    // The held node first, then the skipped ones, to the limit; each error cut; all counted.
    expect(a.compute.failedNodes).toHaveLength(50);
    expect(a.compute.failedNodes![0]).toMatchObject({ node: 'cmp9900', status: 'held' });
    expect(a.compute.failedNodes![0]!.error).toHaveLength(240);
    expect(a.compute.failedNodeCounts).toEqual({ held: 1, retrying: 0, skipped: 99, done: 0 });
    expect(a.compute.batches!.map((b) => b.index)).toEqual(Array.from({ length: 21 }, (_, i) => 181 + i));
    expect(a.compute.batchesOmitted).toBe(180);
    expect(a.steps.find((s) => s.id === 'backup')!.summary).toHaveLength(400);
    expect(a.bounded).toMatchObject({ stepsOmitted: 399, failedNodesOmitted: 50, warningsOmitted: 0 });
    expect(a.bounded!.detail).toContain('nova-upgrade-big/compute-batch-<n>/');
    // The workflow's own state is untouched.
    expect(p.steps).toHaveLength(403);
    expect(p.compute.failedNodes![0]!.error).toHaveLength(2000);
  });

  it("bounds an abort's record of what took effect: the newest batch steps listed, the earlier counted", () => {
    const p = atTenThousand();
    const lines = succeededSteps(p.steps);
    // 200 compute batches and 201 SIGHUP batches succeeded: the last 24 listed, the rest one line.
    expect(lines[0]).toMatch(/^backup: x{400}$/);
    expect(lines[1]).toBe(
      "and 377 earlier batch steps succeeded (compute-batch 200, hup-computes 177); each batch's detail is in its child workflow",
    );
    expect(lines.slice(2).map((l) => l.split(':')[0] + ':' + l.split(':')[1])).toEqual(
      Array.from({ length: 24 }, (_, i) => `hup-computes:${178 + i}`),
    );
    expect(lines.slice(2).every((l) => l.length <= 'hup-computes:201: '.length + 240)).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(lines))).toBeLessThan(16 * 1024);
    // A small cloud's record is every succeeded step, in order, as before.
    const small = fleetProgress(3, 2);
    expect(succeededSteps(small.steps)).toEqual([
      'backup: ' + small.steps[0]!.summary,
      'compute-batch:1: done',
      'compute-batch:2: done',
    ]);
  });

  it('renders the bounded answer as readably as the whole state', () => {
    const a = progressAnswer(atTenThousand());
    const table = progressTable(a, { width: 120 });
    const lines = table.split('\n');
    for (const l of lines) expect([...l].length, l).toBeLessThanOrEqual(120);
    expect(lines.length).toBeLessThan(20);
    expect(table).toMatch(/upgrade nova-compute batches +200\/201 +1 held/);
    expect(table).toMatch(/SIGHUP nova-compute batches +201\/201/);
    expect(table).toMatch(/! upgrade nova-compute batch 201\/201 .* held/);
    expect(table).toMatch(/computes: 201\/201 batches done, .* 100 failed nodes/);
    expect(table).toContain('  held: cmp9900 (batch 50)');
    expect(lines).toContain(
      '  skipped (99): cmp0 (batch 1, install nova 31.0.0 on cmp0), cmp100 (batch 1, install nova 31.0.0 on cmp100), cmp200 (b…',
    );
    expect(progressTable(a)).toMatch(
      /^ {2}skipped \(99\): cmp0 .*cmp900 \(batch 5, [^)]*\), and 89 more \(status --json\)$/m,
    );
  });
});
