// The workflow's view of where the upgrade stands. Everything the progress query, the Web UI's
// current details and the search attributes show is derived from this one object.
import { patched, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Phase, Progress, StepState, UpgradeInput } from '../common/messages';
import { UpgradePhase, UpgradeStatus, UpgradeStep } from '../common/searchAttributes';

export class UpgradeState {
  readonly progress: Progress;
  private readonly byId = new Map<string, StepState>();
  /** The search attributes last upserted, as one string; undefined before the first. */
  private published?: string;

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

  /** Keeps search attributes and the UI's current details in line with the progress. */
  publish(): void {
    const p = this.progress;
    const attrs = [
      { key: UpgradeStatus, value: p.status },
      { key: UpgradePhase, value: p.phase ?? 'none' },
      { key: UpgradeStep, value: p.currentStep ?? 'none' },
    ];
    // An upsert is a command and an event whether or not a value changed: 102 of a lab run's
    // 459 parent events were upserts. Runs started before this replay their upserts as recorded.
    const now = attrs.map((a) => a.value).join('\u0000');
    if (now !== this.published || !patched('search-attributes-on-change')) {
      upsertSearchAttributes(attrs);
      this.published = now;
    }
    setCurrentDetails(this.details());
  }

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
