// The workflow's view of where the upgrade stands. Everything the progress query, the Web UI's
// current details and the search attributes show is derived from this one object.
import { patched, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Phase, Progress, StepState, UpgradeInput } from '../common/messages';
import { UpgradePhase, UpgradeStatus, UpgradeStep } from '../common/searchAttributes';

export class UpgradeState {
  readonly progress: Progress;
  private readonly byId = new Map<string, StepState>();

  constructor(
    input: UpgradeInput,
    plan: Pick<StepState, 'id' | 'phase' | 'title' | 'node'>[],
    computeNodes: number,
    batches: number,
  ) {
    const inv = input.inventory;
    this.progress = {
      workflowId: workflowInfo().workflowId,
      cloud: inv.cloud,
      from: inv.release.from,
      to: inv.release.to,
      status: 'running',
      approvals: [],
      steps: plan.map((p) => ({
        id: p.id,
        phase: p.phase,
        title: p.title,
        ...(p.node ? { node: p.node } : {}),
        status: 'pending',
        attempts: 0,
        operatorRetries: 0,
      })),
      warnings: [],
      compute: { nodesDone: 0, nodesTotal: computeNodes, batchesDone: 0, batchesTotal: batches },
      abortRequested: false,
    };
    for (const s of this.progress.steps) this.byId.set(s.id, s);
  }

  /**
   * A step replaced in this release leaves the progress of runs that record the replacement; it
   * stays known here (skipped, with `reason`) for the step that replaces it to ask about.
   */
  retire(id: string, reason: string): void {
    const s = this.step(id);
    s.status = 'skipped';
    s.skipReason = reason;
    this.progress.steps = this.progress.steps.filter((x) => x.id !== id);
  }

  /** A step of this run's plan, or undefined for one it never had (a step of another release). */
  stepIfKnown(id: string): StepState | undefined {
    return this.byId.get(id);
  }

  step(id: string): StepState {
    const s = this.byId.get(id);
    // A step missing from the plan is a bug in the workflow, not an operator problem.
    if (!s) throw new Error(`step ${id} is not in the plan`);
    return s;
  }

  now(): string {
    return new Date().toISOString();
  }

  enterPhase(phase: Phase): void {
    this.progress.phase = phase;
    this.publish();
  }

  /**
   * Keeps search attributes and the UI's current details in line with the progress. Since
   * `search-attributes-on-change`, an upsert (one history event each) is sent only when a value
   * changed, and compute work shows as one step value for all its batches: at 92 computes,
   * 298 of the parent's 1,270 events were upserts, two per step.
   */
  publish(): void {
    const p = this.progress;
    this.onChange ??= patched('search-attributes-on-change');
    const step = p.currentStep ?? 'none';
    const attrs: [string, string, string] = [
      p.status,
      p.phase ?? 'none',
      this.onChange ? step.replace(/^(compute-batch|hup-computes):\d+$/, '$1') : step,
    ];
    const key = attrs.join('\u0000');
    if (!this.onChange || key !== this.lastAttributes) {
      upsertSearchAttributes([
        { key: UpgradeStatus, value: attrs[0] },
        { key: UpgradePhase, value: attrs[1] },
        { key: UpgradeStep, value: attrs[2] },
      ]);
      this.lastAttributes = key;
    }
    setCurrentDetails(this.details());
  }

  private onChange?: boolean;
  private lastAttributes?: string;

  private details(): string {
    const p = this.progress;
    const lines = [`**${p.status}** — nova ${p.from} → ${p.to} on ${p.cloud}`];
    if (p.phase) lines.push(`Phase: ${p.phase}`);
    if (p.currentStep) lines.push(`Step: ${this.byId.get(p.currentStep)?.title ?? p.currentStep}`);
    if (p.pendingApproval) {
      lines.push(
        '',
        `Waiting for approval of **${p.pendingApproval.phase}**:`,
        '```',
        p.pendingApproval.command,
        '```',
      );
      for (const w of p.pendingApproval.warnings) lines.push(`- warning: ${w}`);
    }
    if (p.pendingDecision) {
      lines.push(
        '',
        `Held at **${p.pendingDecision.stepId}**: ${p.pendingDecision.error}`,
        'Choose one:',
        '```',
        ...p.pendingDecision.commands,
        '```',
      );
    }
    if (p.compute.batchesTotal)
      lines.push(
        `Compute: ${p.compute.nodesDone}/${p.compute.nodesTotal} nodes, ${p.compute.batchesDone}/${p.compute.batchesTotal} batches`,
      );
    // Failed nodes by name, the first 20: the Web UI's details stay small at any fleet size.
    const failed = (p.compute.failedNodes ?? []).filter((f) => f.status !== 'done');
    if (failed.length)
      lines.push(
        `Failed computes (${failed.length}): ${failed
          .slice(0, 20)
          .map((f) => `${f.host} ${f.status} (batch ${f.batch})`)
          .join(', ')}${failed.length > 20 ? ', …' : ''}`,
      );
    if (p.drain)
      lines.push(
        `Draining ${p.drain.server}: ${Object.entries(p.drain.sessions)
          .map(([lb, n]) => `${lb}=${n}`)
          .join(', ')} sessions`,
      );
    if (p.probe) lines.push(`Probe: ${p.probe.requests} requests, ${p.probe.failedRequests} failed`);
    // Markdown in the Web UI: a blank line between lines keeps each on its own.
    return lines
      .join('\n\n')
      .replace(/```\n\n/g, '```\n')
      .replace(/\n\n```/g, '\n```');
  }
}
