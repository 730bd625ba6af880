// Runs tempest detached on its node and turns stestr's report into a verdict.
import type { CommandRecord } from '../ssh/types';
import type { SshTarget } from '../../common/sshTarget';
import { lastLines, outputOf, toRecord, type NovaDeps } from '../nova/common';
import { cancellationSignal, heartbeat, nonRetryable } from '../common';
import { parseStestrTotals, passedTestIds, type StestrTotals } from './stestr';

export { parseStestrTotals, passedTestIds } from './stestr';

export interface RunTempestInput {
  target: SshTarget;
  command: string;
  key: string;
  stateDir: string;
  timeoutMs: number;
  pollMs?: number;
}

export interface RunTempestResult {
  summary: string;
  totals: StestrTotals;
  failingTests: string[];
  commands: CommandRecord[];
}

export function createTempestActivities(deps: NovaDeps) {
  const { runner } = deps;

  async function runTempest(input: RunTempestInput): Promise<RunTempestResult> {
    const { target, command } = input;
    const passedSoFar = new Set<string>();
    const r = await runner.runDetached(target, {
      key: input.key,
      command,
      stateDir: input.stateDir,
      timeoutMs: input.timeoutMs,
      pollMs: input.pollMs,
      signal: cancellationSignal(),
      onProgress: (tail) => {
        passedTestIds(tail).forEach((id) => passedSoFar.add(id));
        heartbeat({ passedSoFar: passedSoFar.size, tail: lastLines(tail, 3) });
      },
    });
    const commands = [toRecord(r)];
    const report = parseStestrTotals(outputOf(r));
    // stestr exits 0 when its filter matched nothing on some versions; the totals decide.
    if (!report.passed || r.exitCode !== 0 || !report.totals) {
      const names = report.failingTests.slice(0, 50);
      throw nonRetryable(
        'TempestFailed',
        `tempest on ${target.node} failed: ${report.reason}${r.exitCode !== 0 ? ` (exit ${r.exitCode ?? r.signal})` : ''}${names.length ? `. Failing tests: ${names.join(', ')}${report.failingTests.length > names.length ? ` and ${report.failingTests.length - names.length} more` : ''}` : ''}${report.totals ? '' : `\n${lastLines(outputOf(r), 15)}`}`,
        {
          node: target.node,
          command,
          exitCode: r.exitCode,
          totals: report.totals,
          failingTests: report.failingTests,
          reason: report.reason,
        },
      );
    }
    return {
      summary: `tempest passed on ${target.node}: ${report.reason} in ${report.totals.seconds} s`,
      totals: report.totals,
      failingTests: [],
      commands,
    };
  }

  return { runTempest };
}
