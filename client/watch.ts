// `watch`: follows an upgrade until it needs the operator or ends. A TTY gets a redrawn view;
// a pipe gets one line per change, so logs stay readable.
import type { Client } from '@temporalio/client';
import type { Progress } from '../workflows/definitions';
import { CliError, viewUpgrade } from './upgrades';

export interface WatchOptions {
  tty: boolean;
  render: (p: Progress) => string;
  changes: (prev: Progress | undefined, cur: Progress) => string[];
  out: (line: string) => void;
  intervalMs?: number;
  /** Keep following past gates and holds (the lab demo answers them itself). */
  untilEnd?: boolean;
}

export async function watchUpgrade(client: Client, workflowId: string, opts: WatchOptions): Promise<'gate' | 'held' | 'ended'> {
  let prev: Progress | undefined;
  for (;;) {
    let view;
    try {
      view = await viewUpgrade(client, workflowId);
    } catch (err) {
      // The server or worker restarting mid-watch is expected; keep watching and say so.
      if (err instanceof CliError && /not found|no upgrade/.test(err.message)) throw err;
      opts.out(`(waiting: ${err instanceof Error ? err.message.split('\n')[0] : String(err)})`);
      await new Promise((r) => setTimeout(r, 2000));
      continue;
    }
    if (!view.running) {
      opts.out(`upgrade ${workflowId} ${view.status}${view.result ? `: ${view.result.status}` : ''}`);
      return 'ended';
    }
    const p = view.progress;
    if (opts.tty) {
      process.stdout.write(`\x1b[H\x1b[2J${opts.render(p)}\n`);
    } else {
      for (const line of opts.changes(prev, p)) opts.out(line);
    }
    prev = p;
    if (!opts.untilEnd) {
      if (p.status === 'waiting-approval') return 'gate';
      if (p.status === 'held') return 'held';
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
  }
}
