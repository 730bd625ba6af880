// One runbook line whose parts run at once (the restarts of a group, every cell's db sync, the
// pin on every node). Every part settles before the step decides, so no part is left running
// behind a hold; a part that failed is named with its failure; the parts that took effect are
// remembered, so an operator's retry runs only the rest.
import { isCancellation } from '@temporalio/workflow';
import type { Outcome } from '../../common/messages';
import { describeFailure } from '../failures';
import { forEachLimit } from '../limit';

export interface PartsAtOnce<P> {
  parts: P[];
  /** The part as the failure and the summary name it: `cell1`, `devstack@n-sch on controller`. */
  name: (part: P) => string;
  run: (part: P) => Promise<Outcome>;
  /** Parts that took effect in an earlier attempt of this step: one set per step, for the upgrade. */
  done: Set<string>;
  /** At most this many parts at once, in the parts' order; all at once when absent. */
  limit?: number;
  /** The failure's sentence: `${failed} <part: why>; …; ${succeeded} <parts>`. */
  failed: string;
  succeeded: string;
  /** The summary when an earlier attempt did every part. */
  allDone: string;
}

export async function runPartsAtOnce<P>(o: PartsAtOnce<P>): Promise<Outcome> {
  const left = o.parts.filter((p) => !o.done.has(o.name(p)));
  const summaries = new Map<string, string>();
  const failed: string[] = [];
  const runPart = async (p: P): Promise<void> => {
    try {
      const out = await o.run(p);
      o.done.add(o.name(p));
      summaries.set(o.name(p), out.summary);
    } catch (err) {
      if (isCancellation(err)) throw err;
      failed.push(`${o.name(p)}: ${describeFailure(err)}`);
    }
  };
  if (o.limit === undefined) await Promise.all(left.map(runPart));
  else await forEachLimit(left, o.limit, runPart);
  if (failed.length) {
    const ok = left.filter((p) => o.done.has(o.name(p)));
    throw new Error(
      `${o.failed} ${failed.join('; ')}${ok.length ? `; ${o.succeeded} ${ok.map(o.name).join(', ')}` : ''}`,
    );
  }
  // In the parts' order, whatever order they ended in.
  const said = left.map((p) => summaries.get(o.name(p))!);
  return { summary: said.length ? said.join('; ') : o.allDone };
}
