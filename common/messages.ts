// The neutral contract (as the samples' shared.ts): how the CLI, the tests and the workflow talk,
// with signals, queries, updates and the shapes they carry. Imported by workflow code, so nothing
// here may do I/O, and it imports nothing from workflows/ or activities/.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Inventory } from '../inventory/schema';
import type { CompactInventory } from './nodeRuns';

export const TASK_QUEUE = 'nova-upgrade';

export const PHASES = ['before-upgrade', 'before-window', 'during-window', 'after-window'] as const;
export type Phase = (typeof PHASES)[number];

export function isPhase(value: string): value is Phase {
  return (PHASES as readonly string[]).includes(value);
}

/** One upgrade per cloud: the id is the lock. */
export function upgradeWorkflowId(cloud: string): string {
  return `nova-upgrade-${cloud}`;
}

/** What every step and operation reports: the one outcome type. */
export interface Outcome {
  summary: string;
  /** Set when the node showed the step had already taken effect. */
  alreadyDone?: boolean;
  outputTail?: string;
}

export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'held';

export interface StepState {
  id: string;
  phase: Phase;
  title: string;
  node?: string;
  status: StepStatus;
  startedAt?: string;
  endedAt?: string;
  /** Activity attempts reported by the last activity plus operator retries. */
  attempts: number;
  operatorRetries: number;
  outputTail?: string;
  /** Set when the node showed the step had already taken effect. */
  alreadyDone?: boolean;
  summary?: string;
  error?: string;
  skipReason?: string;
}

export interface ApprovalRecord {
  phase: Phase;
  approver: string;
  comment?: string;
  at: string;
  auto: boolean;
}

/**
 * `delete-records`: at the service-version preflight, delete the down records it listed as
 * keeping the compute RPC pinned, then read again.
 */
export type DecisionAction = 'retry' | 'skip' | 'abort' | 'shutdown-sessions' | 'delete-records';

export interface PendingDecision {
  stepId: string;
  error: string;
  choices: DecisionAction[];
  since: string;
  /** The CLI commands that answer it, as shown in the Web UI and by `status`. */
  commands: string[];
}

export interface PendingApproval {
  phase: Phase;
  since: string;
  command: string;
  warnings: string[];
}

export type UpgradeStatus = 'waiting-approval' | 'running' | 'held' | 'aborting' | 'completed' | 'aborted';

export interface ProbeSummary {
  requests: number;
  failedRequests: number;
  versionDecreases: number;
  latencyMs?: { p50: number; p95: number; p99: number; max: number };
}

/** A compute node that failed in its batch while its batch-mates finished, and what became of it. */
export interface FailedNodeRecord {
  node: string;
  host: string;
  batch: number;
  stage: string;
  error: string;
  /** held: waits for the operator; retrying; done (a retry upgraded it); skipped: left on the old release, disabled. */
  status: 'held' | 'retrying' | 'done' | 'skipped';
  reason?: string;
  by?: string;
}

/** One compute batch as aggregates: the per-node detail lives in the batch's child workflow. */
export interface BatchAggregate {
  index: number;
  nodes: number;
  done: number;
  failed: number;
  skipped: number;
  status: 'running' | 'held' | 'done';
  startedAt?: string;
  endedAt?: string;
  /** The slowest node's chain and the sum over nodes (ms): the ideal and the ETA come from these. */
  slowestNodeMs?: number;
  totalNodeMs?: number;
}

export interface ComputeProgress {
  nodesDone: number;
  nodesTotal: number;
  batchesDone: number;
  batchesTotal: number;
  /** Since parallel-compute-batch. */
  batches?: BatchAggregate[];
  failedNodes?: FailedNodeRecord[];
  /**
   * In the progress answer (progressAnswer.ts): the failed nodes by status, all of them, where
   * `failedNodes` lists at most FAILED_NODES_LISTED; and how many batch aggregates were left out.
   */
  failedNodeCounts?: Record<FailedNodeRecord['status'], number>;
  batchesOmitted?: number;
}

/** The batch steps of one phase and kind (compute-batch, hup-computes), counted by status. */
export interface BatchStepGroup {
  phase: Phase;
  kind: string;
  total: number;
  byStatus: Partial<Record<StepStatus, number>>;
}

export interface Progress {
  workflowId: string;
  cloud: string;
  from: string;
  to: string;
  status: UpgradeStatus;
  phase?: Phase;
  currentStep?: string;
  approvals: ApprovalRecord[];
  pendingApproval?: PendingApproval;
  pendingDecision?: PendingDecision;
  /** Command templates corrected while held, in order. */
  templateChanges?: TemplateChange[];
  steps: StepState[];
  warnings: string[];
  compute: ComputeProgress;
  drain?: { server: string; sessions: Record<string, number> };
  probe?: ProbeSummary;
  /** Read by the VIP probe activity: the window's steps are done, report and stop. */
  probeStopRequested?: boolean;
  abortRequested: boolean;
  /**
   * Set when the progress answer was bounded (progressAnswer.ts): what it left out and where
   * the full detail is. Absent in the workflow's own state.
   */
  bounded?: ProgressBounds;
  /** In a bounded answer with many batch steps: all of them, counted; `steps` lists a few. */
  batchSteps?: BatchStepGroup[];
}

export interface ProgressBounds {
  /** Step titles, summaries, errors and failed nodes' errors cut to this many characters. */
  textChars: number;
  stepsOmitted: number;
  failedNodesOmitted: number;
  warningsOmitted: number;
  /** Where the per-node detail is: the batch children, `history`, the Web UI. */
  detail: string;
}

export interface UpgradeInput {
  /** A fleet's nodes as runs (nodeRuns.ts) since the compact input; expanded by the workflow. */
  inventory: Inventory | CompactInventory;
  /** Phases whose gate opens without an operator; recorded as auto-approved. */
  autoApprove: Phase[];
  /** Who started it, for the audit trail. */
  startedBy: string;
}

export interface UpgradeResult {
  status: 'completed' | 'aborted';
  cloud: string;
  from: string;
  to: string;
  /** Bounded as the progress answer (progressAnswer.ts): past 24 batch steps, a few listed… */
  steps: StepState[];
  /** …and all of them counted here. */
  batchSteps?: BatchStepGroup[];
  approvals: ApprovalRecord[];
  warnings: string[];
  /** What an abort left done, in order, so the operator knows where the cloud stands. */
  done: string[];
  probe?: ProbeSummary;
}

export interface ApproveInput {
  phase: Phase;
  approver: string;
  comment?: string;
}

export interface DecideInput {
  action: DecisionAction;
  /** The held step the operator means; refused if another step is held. */
  stepId?: string;
  reason?: string;
  by: string;
}

/** Where the worker reads the webhook URL (it carries a token, so it never enters history). */
export interface WebhookRef {
  urlFile?: string;
  urlEnv?: string;
}

/** What the inventory's notify webhook receives, as JSON, on every gate, hold and finish. */
export type NotifyEventKind = 'gate' | 'hold' | 'finish';

export interface NotifyFields {
  phase?: Phase;
  step?: string;
  message: string;
  /** The one command an operator most likely wants (approve, retry, status). */
  command: string;
  /** Every command that answers a hold, one per choice. */
  commands?: string[];
}

export interface NotifyEvent extends NotifyFields {
  event: NotifyEventKind;
  workflowId: string;
  cloud: string;
  /** Workflow time when it happened. */
  at: string;
}

export const approveUpdate = defineUpdate<ApprovalRecord, [ApproveInput]>('approve');
export const approveSignal = defineSignal<[ApproveInput]>('approve');
export const decideUpdate = defineUpdate<string, [DecideInput]>('decide');

/** Corrects command templates of a held upgrade (`nova-upgrade templates set`); recorded in history. */
export interface SetTemplatesInput {
  /** Template name → the new template, checked as the inventory's are. */
  templates: Record<string, string>;
  by: string;
  reason?: string;
}

/** One accepted correction, as the progress lists it. */
export interface TemplateChange {
  at: string;
  by: string;
  reason?: string;
  /** The step that was held when the templates were changed. */
  stepId: string;
  changes: Record<string, { from: string; to: string }>;
}

export const setTemplatesUpdate = defineUpdate<string, [SetTemplatesInput]>('setTemplates');
export const decideSignal = defineSignal<[DecideInput]>('decide');
export const abortSignal = defineSignal<[{ by: string; reason?: string }]>('abort');
export const progressQuery = defineQuery<Progress>('progress');
/**
 * What the VIP probe asks every 2 s: whether the window's steps are done. A boolean, where the
 * progress answer grows with the fleet (about 160 KiB at 500 computes, by bench/plan-scale.ts).
 */
export const probeStopQuery = defineQuery<boolean>('probeStop');
/**
 * The same question answered by event: the workflow calls this sink when it raises the flag,
 * and the worker that ran the task tells its own probe activity of that run at once
 * (activities/http/probeStop.ts). Sinks issue no command, so replay is unchanged; the query
 * stays the answer for a probe on another worker.
 */
export type ProbeStopSinks = { probeStop: { requested(): void } };
