// The activity context when there is one: the same code also runs outside Temporal (the lab
// demo, tests calling activities directly), where there is nothing to heartbeat.
import { Context } from '@temporalio/activity';

export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Inside an activity, ends early with a CancelledFailure when the workflow cancels it. */
export async function pause(ms: number): Promise<void> {
  const ctx = activityContext();
  if (ctx) await ctx.sleep(ms);
  else await new Promise((r) => setTimeout(r, ms));
}
