// Latency percentiles in bounded memory: a probe may run for hours at 20 requests a second,
// so it keeps a log-scale histogram (1 % wide buckets) instead of every sample.
const MIN_MS = 0.1;
const GROWTH = 1.01;
const BUCKETS = Math.ceil(Math.log(3_600_000 / MIN_MS) / Math.log(GROWTH)) + 1;

export interface LatencySummary {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export class LatencyHistogram {
  private readonly counts = new Uint32Array(BUCKETS);
  private total = 0;
  private maxMs = 0;

  record(ms: number): void {
    const i = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / Math.log(GROWTH)));
    this.counts[i]!++;
    this.total++;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  /** The bucket's upper bound: a percentile is never reported lower than it was. */
  percentile(p: number): number {
    if (!this.total) return 0;
    const rank = Math.ceil((p / 100) * this.total);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.maxMs, MIN_MS * GROWTH ** i);
    }
    return this.maxMs;
  }

  summary(): LatencySummary {
    const round = (n: number) => Math.round(n * 10) / 10;
    return {
      p50: round(this.percentile(50)),
      p95: round(this.percentile(95)),
      p99: round(this.percentile(99)),
      max: round(this.maxMs),
    };
  }
}
