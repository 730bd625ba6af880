// `watch`: follows an upgrade until it needs the operator or ends. A TTY gets a view redrawn in
// place; a pipe gets one line per change, so logs stay readable.
import type { Client } from '@temporalio/client';
import type { Progress } from '../common/messages';
import { liveActivities, type LiveActivity } from './live';
import type { LiveLine } from './render';
import { CliError, viewUpgrade } from './upgrades';

export interface WatchOptions {
  tty: boolean;
  render: (p: Progress) => string;
  changes: (prev: Progress | undefined, cur: Progress) => string[];
  out: (line: string) => void;
  intervalMs?: number;
  /** Keep following past gates and holds (the lab demo answers them itself). */
  untilEnd?: boolean;
  /** Also show what running activities last reported: session counts, the probe, tempest. */
  live?: { render: (p: Progress, live: LiveActivity[]) => string; lines: (live: LiveActivity[]) => LiveLine[] };
  /** Where a TTY frame goes; stdout unless a test captures it. */
  write?: (chunk: string) => void;
}

/** Home, each line cleared to its end, then the rest of the screen: no flicker, no scrollback spam. */
function frame(text: string, first: boolean): string {
  return `${first ? '\x1b[2J' : ''}\x1b[H${text
    .split('\n')
    .map((l) => `${l}\x1b[K`)
    .join('\n')}\n\x1b[J`;
}

export async function watchUpgrade(
  client: Client,
  workflowId: string,
  opts: WatchOptions,
): Promise<'gate' | 'held' | 'ended'> {
  const write = opts.write ?? ((chunk: string) => void process.stdout.write(chunk));
  let prev: Progress | undefined;
  let shownLive = new Set<string>();
  let frames = 0;
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
    const live = opts.live ? await liveActivities(client, workflowId) : [];
    if (opts.tty) {
      write(frame(opts.live ? opts.live.render(p, live) : opts.render(p), frames++ === 0));
    } else {
      for (const line of opts.changes(prev, p)) opts.out(line);
      if (opts.live) {
        const lines = opts.live.lines(live);
        for (const l of lines) if (!shownLive.has(l.key)) opts.out(`  … ${l.text}`);
        shownLive = new Set(lines.map((l) => l.key));
      }
    }
    prev = p;
    if (!opts.untilEnd) {
      if (p.status === 'waiting-approval') return 'gate';
      if (p.status === 'held') return 'held';
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
  }
}
