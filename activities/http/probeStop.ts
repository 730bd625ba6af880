// The VIP probe's stop, by event where the worker can tell. The workflow raises its stop flag
// in a workflow task; the worker that ran that task calls its `probeStop` sink as the task
// completes, and a probe activity of that run in the same process stops at once. A probe on
// another worker, or one started again after its worker died, still learns it by asking the
// workflow (the 2 s query of probe.ts): the event only makes the common case prompt.
//
// Measured on the stand-in lab (bench/steps.ts, docs/performance.md): the query alone left the
// probe running 0.2–2 s past the window's last step, on the chain the upgrade's result waits on.

/** A run's key: the lab demo reuses one workflow id for every upgrade, the run id tells them apart. */
const keyOf = (workflowId: string, runId: string) => `${workflowId}\u0000${runId}`;

/** How many runs' stop requests are remembered for a probe that subscribes after the event. */
const REMEMBERED = 64;

export class ProbeStopEvents {
  private readonly waiting = new Map<string, Set<() => void>>();
  private readonly requested: string[] = [];

  /** The workflow's run asked its probe to stop (called by the worker's sink). */
  request(workflowId: string, runId: string): void {
    const key = keyOf(workflowId, runId);
    if (!this.requested.includes(key)) {
      this.requested.push(key);
      if (this.requested.length > REMEMBERED) this.requested.shift();
    }
    for (const stop of this.waiting.get(key) ?? []) stop();
  }

  /**
   * Calls `stop` once the run asks its probe to stop (at once if it already has); returns the
   * unsubscribe.
   */
  onStop(workflowId: string, runId: string, stop: () => void): () => void {
    const key = keyOf(workflowId, runId);
    if (this.requested.includes(key)) {
      stop();
      return () => undefined;
    }
    const set = this.waiting.get(key) ?? new Set<() => void>();
    set.add(stop);
    this.waiting.set(key, set);
    return () => {
      set.delete(stop);
      if (!set.size) this.waiting.delete(key);
    };
  }
}
