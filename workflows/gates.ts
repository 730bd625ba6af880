// Approval gates and operator holds. They live in the workflow the CLI talks to: a child
// workflow cannot receive a signal sent to its parent.
import { condition, setHandler } from '@temporalio/workflow';
import { progressAnswer } from '../common/progressAnswer';
import {
  abortSignal,
  approveSignal,
  approveUpdate,
  decideSignal,
  decideUpdate,
  progressQuery,
  type ApproveInput,
  type DecideInput,
  type DecisionAction,
  type Phase,
} from '../common/messages';
import { AbortRequested } from './failures';
import type { Notifier } from './notify';
import type { UpgradeState } from './state';

export class Gates {
  private approved = new Set<Phase>();
  private decision?: DecideInput;
  private abortBy?: { by: string; reason?: string };
  /** Set by the interpreter while a step runs that an abort may stop where it stands. */
  onAbort?: () => void;

  constructor(
    private readonly state: UpgradeState,
    private readonly autoApprove: Phase[],
    private readonly notifier?: Notifier,
  ) {
    const p = state.progress;
    // Bounded whatever the fleet (common/progressAnswer.ts); the whole state stays here.
    setHandler(progressQuery, () => progressAnswer(p));
    setHandler(approveUpdate, (input) => this.approve(input), { validator: (input) => this.validateApproval(input) });
    setHandler(approveSignal, (input) => {
      // A signal cannot be refused, so an invalid one is only recorded as a warning.
      const problem = this.approvalProblem(input);
      if (problem) p.warnings.push(`ignored approve signal from ${input.approver}: ${problem}`);
      else this.approve(input);
    });
    setHandler(decideUpdate, (input) => this.decide(input), { validator: (input) => this.validateDecision(input) });
    setHandler(decideSignal, (input) => {
      const problem = this.decisionProblem(input);
      if (problem) p.warnings.push(`ignored ${input.action} signal from ${input.by}: ${problem}`);
      else this.decide(input);
    });
    setHandler(abortSignal, ({ by, reason }) => {
      this.abortBy ??= { by, ...(reason ? { reason } : {}) };
      p.abortRequested = true;
      state.publish();
      this.onAbort?.();
    });
  }

  private approvalProblem(input: ApproveInput): string | undefined {
    const pending = this.state.progress.pendingApproval;
    if (this.approved.has(input.phase)) return `phase ${input.phase} is already approved`;
    if (!pending) return `no phase is waiting for approval (asked for ${input.phase})`;
    if (pending.phase !== input.phase) return `the pending gate is ${pending.phase}, not ${input.phase}`;
    if (!input.approver) return 'an approver name is required';
    return undefined;
  }

  private validateApproval(input: ApproveInput): void {
    const problem = this.approvalProblem(input);
    if (problem) throw new Error(problem);
  }

  private approve(input: ApproveInput) {
    const record = {
      phase: input.phase,
      approver: input.approver,
      ...(input.comment ? { comment: input.comment } : {}),
      at: this.state.now(),
      auto: false,
    };
    this.approved.add(input.phase);
    this.state.progress.approvals.push(record);
    return record;
  }

  /** Waits at the phase's gate unless it was auto-approved; returns early on abort. */
  async waitForApproval(phase: Phase, warnings: string[]): Promise<void> {
    const p = this.state.progress;
    if (this.autoApprove.includes(phase)) {
      this.approved.add(phase);
      p.approvals.push({ phase, approver: 'auto-approve', at: this.state.now(), auto: true });
      this.state.publish();
      return;
    }
    p.status = 'waiting-approval';
    p.pendingApproval = {
      phase,
      since: this.state.now(),
      command: `nova-upgrade approve ${p.workflowId} --phase ${phase} --comment "..."`,
      warnings,
    };
    this.state.publish();
    this.notifier?.send('gate', {
      phase,
      message: `${p.cloud}: phase ${phase} waits for approval${warnings.length ? ` (${warnings.length} warning${warnings.length === 1 ? '' : 's'})` : ''}`,
      command: p.pendingApproval.command,
    });
    await condition(() => this.approved.has(phase) || this.abortBy !== undefined);
    delete p.pendingApproval;
    p.status = 'running';
    this.checkAbort();
    this.state.publish();
  }

  private decisionProblem(input: DecideInput): string | undefined {
    const pending = this.state.progress.pendingDecision;
    if (!pending) return 'no step is held waiting for a decision';
    if (input.stepId && input.stepId !== pending.stepId)
      return `the held step is ${pending.stepId}, not ${input.stepId}`;
    if (!pending.choices.includes(input.action))
      return `${input.action} is not a choice here; choose one of ${pending.choices.join(', ')}`;
    if (input.action === 'skip' && !input.reason?.trim()) return 'skip needs a reason (--reason), which is recorded';
    return undefined;
  }

  private validateDecision(input: DecideInput): void {
    const problem = this.decisionProblem(input);
    if (problem) throw new Error(problem);
  }

  private decide(input: DecideInput): string {
    this.decision = input;
    return `${input.action} accepted for ${this.state.progress.pendingDecision?.stepId}`;
  }

  /** Holds the upgrade at a failed step until the operator chooses. */
  async holdForDecision(stepId: string, error: string, choices: DecisionAction[]): Promise<DecideInput> {
    const p = this.state.progress;
    const id = p.workflowId;
    p.status = 'held';
    p.pendingDecision = {
      stepId,
      error,
      choices,
      since: this.state.now(),
      commands: choices.map((c) =>
        c === 'skip' ? `nova-upgrade skip ${id} --reason "..."` : `nova-upgrade ${c} ${id}`,
      ),
    };
    this.decision = undefined;
    this.state.publish();
    const commands = p.pendingDecision.commands;
    this.notifier?.send('hold', {
      ...(p.phase ? { phase: p.phase } : {}),
      step: stepId,
      message: `${p.cloud}: held at ${stepId}: ${error}`,
      command: commands[0] ?? `nova-upgrade status ${id}`,
      commands,
    });
    await condition(() => this.decision !== undefined || this.abortBy !== undefined);
    const decision = this.decision ?? {
      action: 'abort' as const,
      by: this.abortBy!.by,
      ...(this.abortBy!.reason ? { reason: this.abortBy!.reason } : {}),
    };
    delete p.pendingDecision;
    this.decision = undefined;
    p.status = 'running';
    this.state.publish();
    return decision;
  }

  /** A safe point: unwinds to the abort handler if the operator asked to stop. */
  checkAbort(): void {
    if (this.abortBy) throw new AbortRequested(this.abortBy.by, this.abortBy.reason);
  }

  get abortRequestedBy(): { by: string; reason?: string } | undefined {
    return this.abortBy;
  }
}
