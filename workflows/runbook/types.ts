// The shape of one runbook line. `planUpgrade` returns a list of these; `--dry-run` prints
// their commands and the workflow runs them, in this order, each behind the phase's gate.
import type { RecordedWeights } from '../../common/haproxy';
import type { DecideInput, DecisionAction, Outcome, Phase } from '../../common/messages';
import type { PlannedCommand } from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import type { Ops } from '../ops';
import type { ProbeSnapshot, RunningProbe } from '../ops/http';
import type { UpgradeState } from '../state';
import type { Estimate } from '../window';

/** What a step may leave half-done, so that an abort (or a cancel) can put it right. */
export type Mark =
  | { service: { node: string; unit: string } }
  | { drained: { server: string; node: string; /** Absent: haproxy.backend. */ backend?: string } }
  | { compute: string };

/** Everything a step's `run` may use: the ops, the progress, and what earlier steps found. */
export interface RunContext {
  inv: Inventory;
  ops: Ops;
  state: UpgradeState;
  /** Recorded by record-weights, restored by every enable. */
  weights: RecordedWeights;
  /** Recorded by record-weights:<backend> for services behind backends of their own. */
  backendWeights?: Record<string, RecordedWeights>;
  /** Per server, per LB: stot when its drain took effect, which the session wait compares with. */
  sessionsAtDrain?: Record<string, Record<string, number>>;
  probe?: RunningProbe;
  probeOutcome?: ProbeSnapshot | Error;
  /** Holds the upgrade at a step for the operator's choice without failing it (a compute batch's failed node). */
  hold?: (stepId: string, error: string, choices: DecisionAction[]) => Promise<DecideInput>;
}

export interface RunbookStep {
  /** The runbook line's name, also the step's key in progress, history and run keys. */
  id: string;
  phase: Phase;
  title: string;
  node?: string;
  /** What it runs, host by host, as `--dry-run` shows it. */
  commands: PlannedCommand[];
  /** The operator's answers to a hold here; retry, skip and abort unless said. */
  choices?: DecisionAction[];
  /** Runs an extra choice (e.g. shutdown-sessions) before the step is tried again. */
  onAction?: (rt: RunContext, action: DecisionAction) => Promise<void>;
  /**
   * For the abort handler: `during` is marked before each attempt and cleared on success;
   * `sets` is marked before each attempt and stays; `clears` is cleared on success.
   */
  exposes?: { during?: Mark[]; sets?: Mark[]; clears?: Mark[] };
  /** Not started while what it starts would outlast the maintenance window. */
  window?: { what: string; estimate: (rt: RunContext) => Estimate };
  /**
   * Started when reached and run beside the steps that follow; its outcome is taken after `until`.
   * With `repeat`, it is run again (a new key each time) until `until` is done.
   */
  beside?: { until: string; repeat?: boolean };
  /** Runs before the step's safe point, such as stopping the probe whose result it checks. */
  before?: (rt: RunContext) => Promise<void>;
  /**
   * A step added after a release names its patch: runs started on an earlier release replay
   * without it (the interpreter asks `patched(patch)`), and show it skipped.
   */
  patch?: string;
  /**
   * A step that a later release replaced (renamed or moved to another phase): runs that record
   * this patch skip it, runs started earlier replay it where it was.
   */
  retiredBy?: string;
  /** The retired step this one replaces: skipped when that one already ran in this upgrade. */
  replaces?: string;
  run: (rt: RunContext, key: string) => Promise<Outcome>;
}

/**
 * The plan's shapes that changed after a release. The workflow asks each one's `patched()` marker
 * first of all, before any command, so a run started earlier keeps the plan it started with; the
 * dry run and a new run get today's (every field true).
 */
export interface PlanOptions {
  /**
   * Since `compute-hup-in-batches`: nova-compute's SIGHUP runs in one child per compute batch,
   * its nodes at once, instead of one parent step per compute (9 parent events per compute,
   * measured at 92 computes; the parent would pass Temporal's 51,200-event limit near 5,500).
   */
  computeHupInBatches?: boolean;
  /**
   * Since `restarts-at-once`: the in-place restarts run as two steps, every conductor at once,
   * then every other control service at once, instead of one step per service one after another.
   */
  restartsAtOnce?: boolean;
  /**
   * Since `hups-at-once` (with `computeHupInBatches`): one after-window step SIGHUPs every
   * service at once, the nodes' exchanges beside the compute batches' children (up to 2 at
   * once), instead of the nodes' step and then one step per batch, one after another.
   */
  hupsAtOnce?: boolean;
  /**
   * Since `syncs-and-pins-at-once`: one step syncs every cell's database at once (`db-sync-cells`,
   * at most CELL_COMMANDS_AT_ONCE), and one step pins every node at once (`pin-compute-rpc`),
   * instead of a step per cell and a step per node, one after another.
   */
  syncsAndPinsAtOnce?: boolean;
}

/** Today's plan: what `--dry-run` prints and what a new upgrade runs. */
export const CURRENT_PLAN: Required<PlanOptions> = {
  computeHupInBatches: true,
  restartsAtOnce: true,
  hupsAtOnce: true,
  syncsAndPinsAtOnce: true,
};

/** A step's fields that the dry run and the progress need, without the code. */
export type PlannedStep = Pick<RunbookStep, 'id' | 'phase' | 'title' | 'node' | 'commands'>;
