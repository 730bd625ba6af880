// The seed's HAProxy + keepalived setup as a workflow: one LB node at a time, backups before the
// master, so the VIP always has a holder. Per node: compare, validate, install, reload, verify.
// A step whose activity has exhausted its retries holds for the operator, answered by the same
// `nova-upgrade retry|skip|abort <id>` as the upgrade (the decide update and abort signal).
//
// Steps run through the upgrade's step runner (stepRunner.ts); this file gives it a host over
// its own progress and query, with the same decide/abort definitions as the upgrade.
import {
  condition,
  defineQuery,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { HaproxyActivities } from '../activities/haproxy/activities';
import type { LbSetupActivities } from '../activities/lb/activities';
import { lbNodeJobs, vipCheck, type LbNodeJob } from '../common/lbJobs';
import type { Inventory } from '../inventory/schema';
import {
  abortSignal,
  decideSignal,
  decideUpdate,
  type DecideInput,
  type DecisionAction,
  type PendingDecision,
} from '../common/messages';
import { AbortRequested } from './failures';
import { runStep, type StepHost } from './stepRunner';

export type LbStepStatus = 'pending' | 'running' | 'succeeded' | 'held' | 'skipped' | 'failed';

export interface LbSetupStep {
  id: string;
  node: string;
  title: string;
  status: LbStepStatus;
  attempts: number;
  summary?: string;
  alreadyDone?: boolean;
  error?: string;
  skipReason?: string;
  operatorRetries?: number;
  startedAt?: string;
  endedAt?: string;
}

export interface LbSetupProgress {
  workflowId: string;
  cloud: string;
  status: 'running' | 'held' | 'completed' | 'aborted';
  steps: LbSetupStep[];
  pendingDecision?: PendingDecision;
}

export interface LbSetupInput {
  inventory: Inventory;
  startedBy: string;
}

export interface LbSetupResult {
  status: 'completed' | 'aborted';
  /** False when every node already ran the rendered configuration: the run changed nothing. */
  changed: boolean;
  summary: string;
  vipHolder?: string;
  steps: LbSetupStep[];
}

export const lbSetupProgressQuery = defineQuery<LbSetupProgress>('lbSetupProgress');

/** One setup per cloud at a time: the id is the lock. */
export function lbSetupWorkflowId(cloud: string): string {
  return `nova-lb-setup-${cloud}`;
}

type Acts = LbSetupActivities & Pick<HaproxyActivities, 'checkLoadBalancers'>;
interface Outcome {
  summary: string;
  alreadyDone?: boolean;
}

const STEPS = [
  ['diff', 'compare the files on the node with the rendered ones', ['retry', 'abort']],
  ['validate', 'haproxy -c on the rendered haproxy.cfg', ['retry', 'abort']],
  ['install', 'install the files (with backups) and set ip_nonlocal_bind', ['retry', 'abort']],
  ['reload', 'reload HAProxy and restart keepalived where their files changed', ['retry', 'abort']],
  ['verify', 'see which node holds the VIP and that the frontend answers through it', ['retry', 'skip', 'abort']],
  ['check', 'every API server present and UP, the socket at level admin', ['retry', 'skip', 'abort']],
] as const;

export async function setupLoadBalancers(input: LbSetupInput): Promise<LbSetupResult> {
  const inv = input.inventory;
  const jobs = lbNodeJobs(inv);
  const vip = vipCheck(inv, jobs);
  const progress: LbSetupProgress = {
    workflowId: workflowInfo().workflowId,
    cloud: inv.cloud,
    status: 'running',
    steps: jobs.flatMap((j) =>
      STEPS.map(([kind, title]) => ({
        id: `${kind}:${j.node}`,
        node: j.node,
        title: `${j.node}: ${title}`,
        status: 'pending' as const,
        attempts: 0,
      })),
    ),
  };
  const holds = new Holds(progress);
  const retry = {
    maximumAttempts: inv.retry.maximumAttempts,
    initialInterval: inv.retry.initialIntervalSeconds * 1000,
    maximumInterval: inv.retry.maximumIntervalSeconds * 1000,
    backoffCoefficient: 2,
  };
  const base: ActivityOptions = { startToCloseTimeout: (inv.timeouts.commandSeconds + 60) * 1000, retry };
  const acts = proxyActivities<Acts>(base);
  const waits = proxyActivities<Acts>({
    ...base,
    startToCloseTimeout: vip.timeoutMs + 60_000,
    heartbeatTimeout: 30_000,
  });

  let vipHolder: string | undefined;
  const perNode: Record<(typeof STEPS)[number][0], (j: LbNodeJob) => Promise<Outcome>> = {
    diff: (j) => acts.diffLoadBalancerNode(j).then((d) => ({ summary: d.summary, alreadyDone: !d.changes })),
    validate: (j) => acts.validateHaproxyConfig(j),
    install: (j) => acts.installLoadBalancerFiles(j),
    reload: (j) => acts.reloadLoadBalancerServices(j),
    verify: async (j) => {
      const r = await waits.verifyLoadBalancerVip({ ...vip, from: { node: j.node, target: j.target } });
      vipHolder = r.holder;
      return r;
    },
    check: (j) =>
      acts.checkLoadBalancers({
        lbs: [j.lb],
        backend: inv.haproxy.backend,
        servers: inv.loadBalancer!.servers.map((s) => s.name),
      }),
  };

  try {
    for (const job of jobs) {
      for (const [kind, , choices] of STEPS) {
        holds.checkAbort();
        await runStep(holds, `${kind}:${job.node}`, () => perNode[kind](job), { choices: [...choices] });
      }
    }
  } catch (err) {
    if (!(err instanceof AbortRequested)) throw err;
    progress.status = 'aborted';
    holds.publish();
    const by = `${err.by}${err.reason ? `: ${err.reason}` : ''}`;
    return {
      status: 'aborted',
      changed: changedAny(progress),
      summary: `aborted by ${by}`,
      steps: progress.steps,
      ...(vipHolder ? { vipHolder } : {}),
    };
  }
  progress.status = 'completed';
  holds.publish();
  const changed = changedAny(progress);
  const summary = changed
    ? `set up ${jobs.map((j) => j.node).join(', ')}; VIP ${vip.vipAddress} on ${vipHolder}`
    : `nothing changed: ${jobs.map((j) => j.node).join(', ')} already ran the rendered configuration; VIP ${vip.vipAddress} on ${vipHolder}`;
  return { status: 'completed', changed, summary, steps: progress.steps, ...(vipHolder ? { vipHolder } : {}) };
}

function changedAny(p: LbSetupProgress): boolean {
  return p.steps.some(
    (s) => (s.id.startsWith('install:') || s.id.startsWith('reload:')) && s.status === 'succeeded' && !s.alreadyDone,
  );
}

/** The step runner's host on this workflow's own progress, with the upgrade's hold semantics. */
class Holds implements StepHost {
  private decision?: DecideInput;
  private abortBy?: { by: string; reason?: string };

  constructor(private readonly p: LbSetupProgress) {
    setHandler(lbSetupProgressQuery, () => p);
    setHandler(decideUpdate, (d) => this.decide(d), { validator: (d) => this.validate(d) });
    setHandler(decideSignal, (d) => {
      if (!this.problem(d)) this.decide(d);
    });
    setHandler(abortSignal, ({ by, reason }) => {
      this.abortBy ??= { by, ...(reason ? { reason } : {}) };
    });
    this.publish();
  }

  private problem(d: DecideInput): string | undefined {
    const pending = this.p.pendingDecision;
    if (!pending) return 'no step is held waiting for a decision';
    if (d.stepId && d.stepId !== pending.stepId) return `the held step is ${pending.stepId}, not ${d.stepId}`;
    if (!pending.choices.includes(d.action))
      return `${d.action} is not a choice here; choose one of ${pending.choices.join(', ')}`;
    if (d.action === 'skip' && !d.reason?.trim()) return 'skip needs a reason (--reason), which is recorded';
    return undefined;
  }

  private validate(d: DecideInput): void {
    const problem = this.problem(d);
    if (problem) throw new Error(problem);
  }

  private decide(d: DecideInput): string {
    this.decision = d;
    return `${d.action} accepted for ${this.p.pendingDecision?.stepId}`;
  }

  checkAbort(): void {
    if (this.abortBy) throw new AbortRequested(this.abortBy.by, this.abortBy.reason);
  }

  step(id: string): LbSetupStep {
    return this.p.steps.find((s) => s.id === id)!;
  }

  now(): string {
    return new Date().toISOString();
  }

  starting(): void {
    this.publish();
  }

  async hold(stepId: string, error: string, choices: DecisionAction[]): Promise<DecideInput> {
    const id = this.p.workflowId;
    this.p.status = 'held';
    this.p.pendingDecision = {
      stepId,
      error,
      choices,
      since: new Date().toISOString(),
      commands: choices.map((c) =>
        c === 'skip' ? `nova-upgrade skip ${id} --reason "..."` : `nova-upgrade ${c} ${id}`,
      ),
    };
    this.decision = undefined;
    this.publish();
    await condition(() => this.decision !== undefined || this.abortBy !== undefined);
    const d = this.decision ?? { action: 'abort' as const, ...this.abortBy! };
    delete this.p.pendingDecision;
    this.decision = undefined;
    this.p.status = 'running';
    this.publish();
    return d;
  }

  publish(): void {
    const p = this.p;
    const current = p.steps.find((s) => s.status === 'running' || s.status === 'held');
    const lines = [`**${p.status}** — HAProxy + keepalived setup on ${p.cloud}`];
    if (current) lines.push(`Step: ${current.title}`);
    if (p.pendingDecision)
      lines.push(
        '',
        `Held at **${p.pendingDecision.stepId}**: ${p.pendingDecision.error}`,
        'Choose one:',
        '```',
        ...p.pendingDecision.commands,
        '```',
      );
    setCurrentDetails(lines.join('\n'));
  }
}
