// Tempest's verdict, read from stestr's own report: the Totals block it prints at the end of
// `stestr run` (and so of `tempest run`), and the `{worker} test.id [time] ... FAILED` lines.

export interface StestrTotals {
  ran: number;
  seconds: number;
  passed: number;
  skipped: number;
  expectedFail: number;
  unexpectedSuccess: number;
  failed: number;
  sumOfExecuteSeconds?: number;
}

export interface StestrReport {
  /** Undefined when stestr printed no Totals block: no test matched, or it never got to run. */
  totals?: StestrTotals;
  failingTests: string[];
  /** A run passes only with a Totals block, at least one pass, no failure, no unexpected success. */
  passed: boolean;
  reason: string;
}

const RESULT_LINE =
  /^\{\d+\}\s+(\S+)(?:\s+\[[\d.]+s\])?\s+\.\.\.\s+(ok|FAILED|SKIPPED(?::.*)?|Expected Fail|Unexpected Success)/;

function count(block: string, label: string): number | undefined {
  const m = new RegExp(`^\\s*-\\s*${label}:\\s*(\\d+)`, 'm').exec(block);
  return m ? Number(m[1]) : undefined;
}

export function parseStestrTotals(output: string): StestrReport {
  const failing = new Set<string>();
  for (const line of output.split(/\r?\n/)) {
    const m = RESULT_LINE.exec(line.trim());
    if (m && m[2] === 'FAILED') failing.add(m[1]!);
  }
  // The failure section repeats each failed id under "Failed N tests - output below:".
  const section = /Failed \d+ tests - output below:\n=+\n([\s\S]*?)(?:\n={3,}\nTotals|$)/.exec(
    output.replace(/\r\n/g, '\n'),
  );
  if (section) {
    for (const m of section[1]!.matchAll(/^(\S+)\n-+\n/gm)) failing.add(m[1]!);
  }
  const failingTests = [...failing];

  const ran = /^Ran: (\d+) tests? in ([\d.]+) sec\./m.exec(output);
  if (!ran) {
    return {
      failingTests,
      passed: false,
      reason: 'stestr printed no Totals block: no test matched the selection, or the run did not get that far',
    };
  }
  const block = output.slice(ran.index);
  const sum = /^Sum of execute time for each test: ([\d.]+) sec\./m.exec(block);
  const totals: StestrTotals = {
    ran: Number(ran[1]),
    seconds: Number(ran[2]),
    passed: count(block, 'Passed') ?? 0,
    skipped: count(block, 'Skipped') ?? 0,
    expectedFail: count(block, 'Expected Fail') ?? 0,
    unexpectedSuccess: count(block, 'Unexpected Success') ?? 0,
    failed: count(block, 'Failed') ?? 0,
    ...(sum ? { sumOfExecuteSeconds: Number(sum[1]) } : {}),
  };
  if (totals.failed > 0)
    return { totals, failingTests, passed: false, reason: `${totals.failed} of ${totals.ran} tests failed` };
  if (totals.unexpectedSuccess > 0)
    return { totals, failingTests, passed: false, reason: `${totals.unexpectedSuccess} unexpected successes` };
  if (totals.passed === 0)
    return {
      totals,
      failingTests,
      passed: false,
      reason: `no test passed (${totals.ran} ran, ${totals.skipped} skipped)`,
    };
  return { totals, failingTests, passed: true, reason: `${totals.passed} passed, ${totals.skipped} skipped` };
}

/** Ids of tests reported ok in an output tail; the union over tails approximates progress. */
export function passedTestIds(tail: string): string[] {
  const ids: string[] = [];
  for (const line of tail.split(/\r?\n/)) {
    const m = RESULT_LINE.exec(line.trim());
    if (m && m[2] === 'ok') ids.push(m[1]!);
  }
  return ids;
}
