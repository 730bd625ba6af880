// Long or non-idempotent commands run detached on the node, claimed with an atomic mkdir, so
// an activity retried after its worker died reattaches to the first run instead of starting a
// second one. The run directory is the record: command, pid, output, exit status.
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import * as fail from './errors';
import { abortReason } from './exec';
import { DEFAULT_OUTPUT_LIMIT_BYTES } from './outputTail';
import { killProcessGroupScript, remotePath, shQuote } from './shell';
import type { CommandResult, DetachedOptions, RunOptions } from './types';
import type { SshTarget } from '../../common/sshTarget';

export interface CommandRunner {
  run(target: SshTarget, command: string, opts?: RunOptions): Promise<CommandResult>;
}

export interface DetachedSettings {
  killGraceMs: number;
  /** Output bytes fetched at each poll for onProgress; small, as it crosses the wire every poll. */
  progressTailBytes?: number;
  /** Output bytes kept in the final result. */
  outputLimitBytes?: number;
  /** How long a claimed run may go without recording its pid before it counts as lost. */
  startGraceMs?: number;
  /** Bound on one status poll, so a hung node cannot stall the wait forever. */
  pollTimeoutMs?: number;
}

// Temporal cancels running activities with these reasons when the run should outlive this
// attempt: the worker is going away, or the server gave up on it and will retry elsewhere.
// The retry reattaches; killing here would make it find a cancelled run instead.
// NOT_FOUND is what a superseded attempt hears: a worker frozen past the heartbeat timeout
// (a VM pause, a long GC, SIGSTOP) wakes up to a server that already timed this attempt out
// and scheduled the next one. Measured on the lab: a worker frozen 25 s in online-migrations
// killed the run its successor was about to reattach to, and the step held for an operator.
// A workflow that is really gone (terminated) also answers NOT_FOUND; its run then finishes on
// its own, which every step already tolerates (the node's state decides on the next run).
const LEAVE_RUNNING_ON = new Set([
  'WORKER_SHUTDOWN',
  'TIMED_OUT',
  'NOT_FOUND',
  'PAUSED',
  'RESET',
  'HEARTBEAT_DETAILS_CONVERSION_FAILED',
]);

/** Kill only on a real cancellation (the workflow or the operator asked); leave running otherwise. */
export function defaultKillOnAbort(reason: unknown): boolean {
  return !(reason instanceof Error && LEAVE_RUNNING_ON.has(reason.message));
}

/** A directory name that is safe on any filesystem and distinct for distinct keys. */
export function safeRunKey(key: string): string {
  const cleaned = key.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[.-]+/, '');
  if (cleaned === key && cleaned.length > 0 && cleaned.length <= 120) return cleaned;
  const digest = createHash('sha256').update(key).digest('hex').slice(0, 12);
  return `${cleaned.slice(0, 100)}-${digest}`;
}

const OUTPUT_MARK = '--- nova-upgrade detached output ---';

function runDirAssignment(opts: DetachedOptions): string {
  return `runs=${remotePath(opts.stateDir)}/runs\nd="$runs"/${shQuote(safeRunKey(opts.key))}`;
}

// Prints the run's state, its resolved directory, then the tail of its output. The exit
// file is checked again after a dead pid: the run may have finished between the two checks.
// Files are read with the shell's own \`read\`, not \`cat\`: every exchange of every waiting run
// runs this, and on the scale lab (100 virtual computes on two cores, their nodes' commands
// sharing the machine) forks were ~900 a second (bench/fleet.ts, forksPerS).
function statusScript(tailBytes: number): string {
  return `
rd() { v=-; [ -f "$1" ] && read -r v < "$1"; [ -n "$v" ] || v=-; printf '%s' "$v"; }
exited() { echo "exited $(rd "$d/exit") $(rd "$d/started_at") $(rd "$d/finished_at")"; }
if [ ! -d "$d" ]; then echo missing
elif [ -f "$d/exit" ]; then exited
elif [ -f "$d/cancelled" ]; then read -r why < "$d/cancelled"; echo "cancelled $why"
elif [ -f "$d/pid" ]; then
  read -r pid < "$d/pid"
  boot=; [ -r /proc/sys/kernel/random/boot_id ] && read -r boot < /proc/sys/kernel/random/boot_id
  was=; [ -f "$d/boot_id" ] && read -r was < "$d/boot_id"
  if [ -n "$boot" ] && [ -n "$was" ] && [ "$was" != "$boot" ]; then echo "lost rebooted $pid"
  elif kill -0 "$pid" 2>/dev/null; then echo "running $pid"
  elif [ -f "$d/exit" ]; then exited
  else echo "lost died $pid"
  fi
else echo starting
fi
(cd "$d" 2>/dev/null && pwd) || echo "$d"
printf '%s\n' ${shQuote(OUTPUT_MARK)}
tail -c ${tailBytes} "$d/output" 2>/dev/null
true`;
}

// Completion by event: the exchange that claims a run (or reattaches to it, or reports on it)
// stays open on the node until the run ends, or until \`boundMs\` passes so the caller can
// heartbeat and show progress, and then prints the status. A run that ends mid-exchange is
// seen at once, not at the next poll a second later: on the default lab, an install of 0.16 s
// of commands took 1.5 s at a 1 s poll.
// The run holds an exclusive flock(2) on \`lock\` for as long as it lives (RUN_WRAPPER), and
// the wait is \`flock -s -w <bound>\` on it: the kernel wakes it when the run's process exits,
// whatever the command left behind (the lock is not passed to it), with no polling at all. The
// pause loop it replaces forked a \`sleep\` and a \`cat\` 20 times a second per waiting run:
// on the scale lab, 50 installs at once were ~3,000 forks a second on the machine their nodes
// share (bench/fleet.ts, forksPerS, docs/fleet-bench.md).
// Without flock on the node, or for a run claimed before the lock existed (no \`locked\`
// marker), the pause loop stays: it starts at 10 ms and backs off to 50 ms, and reads the pid
// with the shell's own \`read\`. A flock that returns while the pid lives and no exit is recorded
// (a filesystem without working locks) drops back to that loop instead of spinning.
// A dead pid also ends the wait (the status then says whether it recorded an exit first).
function waitScript(boundMs: number): string {
  return `
left=${Math.max(0, Math.round(boundMs))}; s=10; p=; lk=
command -v flock > /dev/null 2>&1 && lk=1
while [ "$left" -gt 0 ] && [ -d "$d" ] && [ ! -f "$d/exit" ] && [ ! -f "$d/cancelled" ]; do
  if [ -z "$p" ] && [ -f "$d/pid" ]; then read -r p < "$d/pid" || p=; fi
  if [ -n "$p" ] && ! kill -0 "$p" 2>/dev/null; then break; fi
  if [ -n "$p" ] && [ -n "$lk" ] && [ -f "$d/locked" ]; then
    flock -s -w "$((left / 1000)).$((left % 1000 / 100))$((left % 100 / 10))$((left % 10))" "$d/lock" true 2> /dev/null
    case $? in
      0) if [ -f "$d/exit" ] || ! kill -0 "$p" 2>/dev/null; then break; fi; lk= ;;
      1) break ;;
      *) lk= ;;
    esac
  fi
  if sleep "0.0$s" 2>/dev/null; then left=$((left - s)); else sleep 1; left=$((left - 1000)); fi
  [ "$s" -lt 50 ] && s=$((s * 2)) && [ "$s" -gt 50 ] && s=50
done`;
}

// The run itself: takes its lock (released by the kernel when it exits), records its pid (=
// its process group, thanks to setsid), then its exit status through a rename so a reader
// never sees a half-written file. The command does not inherit the lock's descriptor (8>&-), so
// a daemon it starts cannot hold the lock past the run's end.
const RUN_WRAPPER =
  '{ exec 8> lock && flock -x 8 && : > locked; } 2> /dev/null; ' +
  'echo $$ > pid.tmp && mv pid.tmp pid; [ -f cancelled ] && exit 0; ' +
  'sh -c "$1" > output 2>&1 < /dev/null 8>&-; rc=$?; date +%s > finished_at; echo "$rc" > exit.tmp && mv exit.tmp exit';

function claimScript(opts: DetachedOptions, tailBytes: number, boundMs: number): string {
  return `${runDirAssignment(opts)}
mkdir -p "$runs" || exit 1
if mkdir "$d" 2>/dev/null; then
  echo nova-upgrade-claim=new
  boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null) && [ -n "$boot" ] && echo "$boot" > "$d/boot_id"
  date +%s > "$d/started_at"
  printf '%s\\n' ${shQuote(opts.command)} > "$d/command"
  (cd "$d" && exec setsid nohup sh -c ${shQuote(RUN_WRAPPER)} nova-upgrade-run ${shQuote(opts.command)} > /dev/null 2>&1 < /dev/null) &
  t=0
  while [ ! -f "$d/pid" ] && [ "$t" -lt 5000 ]; do
    if sleep 0.01 2>/dev/null; then t=$((t + 10)); else sleep 1; t=$((t + 1000)); fi
  done
else
  echo nova-upgrade-claim=existing
fi
${waitScript(boundMs)}
${statusScript(tailBytes)}`;
}

function killScript(opts: DetachedOptions, why: string, graceMs: number): string {
  return `${runDirAssignment(opts)}
if [ -d "$d" ] && [ ! -f "$d/exit" ]; then
  printf '%s\\n' ${shQuote(why)} > "$d/cancelled"
  if [ -f "$d/pid" ]; then
${killProcessGroupScript('"$(cat "$d/pid")"', graceMs)}
  fi
fi
true`;
}

type RunState =
  | { kind: 'exited'; exitCode: number | null; startedAt?: number; finishedAt?: number }
  | { kind: 'running'; pid: number }
  | { kind: 'starting' | 'missing' }
  | { kind: 'cancelled'; why: string }
  | { kind: 'lost'; cause: 'rebooted' | 'died'; pid: number };

interface Status {
  state: RunState;
  dir: string;
  tail: string;
}

function epochOrUndefined(text: string | undefined): number | undefined {
  return text && /^\d+$/.test(text) ? Number(text) : undefined;
}

function parseStatus(stdout: string): Status {
  const mark = stdout.indexOf(`\n${OUTPUT_MARK}\n`);
  const head = (mark >= 0 ? stdout.slice(0, mark) : stdout).split('\n');
  const tail = mark >= 0 ? stdout.slice(mark + OUTPUT_MARK.length + 2) : '';
  const [kind, ...rest] = (head[head.length - 2] ?? '').split(' ');
  const dir = head[head.length - 1] ?? '';
  let state: RunState;
  switch (kind) {
    case 'exited':
      state = {
        kind,
        exitCode: /^-?\d+$/.test(rest[0] ?? '') ? Number(rest[0]) : null,
        startedAt: epochOrUndefined(rest[1]),
        finishedAt: epochOrUndefined(rest[2]),
      };
      break;
    case 'running':
      state = { kind, pid: Number(rest[0]) };
      break;
    case 'cancelled':
      state = { kind, why: rest.join(' ') };
      break;
    case 'lost':
      state = { kind, cause: rest[0] === 'rebooted' ? 'rebooted' : 'died', pid: Number(rest[1]) };
      break;
    case 'starting':
      state = { kind };
      break;
    default:
      state = { kind: 'missing' };
  }
  return { state, dir, tail };
}

class AbortedWait extends Error {
  constructor(readonly reason: Error) {
    super(reason.message);
  }
}

/** Resolves with `work`, or rejects as soon as `signal` aborts (leaving `work` to finish alone). */
function unlessAborted<T>(work: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return work;
  work.catch(() => undefined);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new AbortedWait(abortReason(signal)));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export async function runDetached(
  runner: CommandRunner,
  target: SshTarget,
  opts: DetachedOptions,
  settings: DetachedSettings,
): Promise<CommandResult> {
  const pollMs = opts.pollMs ?? 1000;
  const progressBytes = settings.progressTailBytes ?? 4096;
  const finalBytes = settings.outputLimitBytes ?? DEFAULT_OUTPUT_LIMIT_BYTES;
  const startGraceMs = settings.startGraceMs ?? 10_000;
  const pollOpts: RunOptions = { timeoutMs: (settings.pollTimeoutMs ?? 60_000) + pollMs };
  const where = fail.where(target);
  const began = Date.now();
  const deadline = opts.timeoutMs ? began + opts.timeoutMs : Infinity;
  // Each exchange waits on the node up to one poll interval for the run to end: progress (and
  // so heartbeats) still comes once per pollMs, completion as soon as it happens.
  const boundMs = () => Math.max(0, Math.min(pollMs, deadline - Date.now()));
  const describe = (dir: string) => `detached run "${opts.key}" on ${where} (${dir})`;

  const script = async (body: string) => {
    const result = await runner.run(target, body, pollOpts);
    if (result.exitCode !== 0) {
      throw ApplicationFailure.create({
        type: fail.SshFailureType.SshDetachedRunFailedToStart,
        nonRetryable: false,
        message: `cannot manage detached run "${opts.key}" on ${where} under ${opts.stateDir}: exit ${result.exitCode}: ${result.stderr.trim()}`,
      });
    }
    return result.stdout;
  };
  const poll = async (tailBytes: number, waitMs = 0) =>
    parseStatus(await script(`${runDirAssignment(opts)}\n${waitScript(waitMs)}\n${statusScript(tailBytes)}`));
  const kill = (why: string) => script(killScript(opts, why, settings.killGraceMs));

  try {
    if (opts.signal?.aborted) throw new AbortedWait(abortReason(opts.signal));
    const claimOutput = await unlessAborted(script(claimScript(opts, progressBytes, boundMs())), opts.signal);
    const markAt = claimOutput.indexOf(`\n${OUTPUT_MARK}\n`);
    const reattached = /^nova-upgrade-claim=existing$/m.test(markAt >= 0 ? claimOutput.slice(0, markAt) : claimOutput);
    let status = parseStatus(claimOutput);
    let startingSince: number | undefined;
    for (;;) {
      const { state } = status;
      opts.onProgress?.(status.tail);
      if (state.kind === 'exited') {
        const final = status.tail.length < progressBytes ? status : await poll(finalBytes);
        const remoteMs =
          state.startedAt !== undefined && state.finishedAt !== undefined
            ? (state.finishedAt - state.startedAt) * 1000
            : undefined;
        return {
          node: target.node,
          command: opts.command,
          exitCode: state.exitCode,
          durationMs: reattached && remoteMs !== undefined ? remoteMs : Date.now() - began,
          stdout: final.tail,
          stderr: '',
          ...(reattached ? { reattached: true } : {}),
        };
      }
      if (state.kind === 'cancelled') {
        throw ApplicationFailure.create({
          type: fail.SshFailureType.SshDetachedRunCancelled,
          nonRetryable: true,
          message: `${describe(status.dir)} was stopped earlier (${state.why}) and is not restarted; use a new key to run it again`,
        });
      }
      if (state.kind === 'starting') startingSince ??= Date.now();
      if (
        state.kind === 'lost' ||
        state.kind === 'missing' ||
        (state.kind === 'starting' && Date.now() - startingSince! > startGraceMs)
      ) {
        const what =
          state.kind === 'lost'
            ? `its process (pid ${state.pid}) is gone without recording an exit status${state.cause === 'rebooted' ? ' and the node has rebooted since it started' : ''}`
            : state.kind === 'missing'
              ? 'its run directory has disappeared'
              : 'its process never recorded a pid';
        throw ApplicationFailure.create({
          type: fail.SshFailureType.SshDetachedRunLost,
          nonRetryable: true,
          message:
            `${describe(status.dir)} was claimed but ${what}; it was NOT restarted, since it may have done part of its ` +
            `work. Inspect ${status.dir}/output, then remove ${status.dir} to run it again under the same key, or use a new key`,
        });
      }
      if (Date.now() >= deadline) {
        const killed = await kill(`timed out after ${opts.timeoutMs} ms`).then(
          () => 'its process group was killed',
          (err: Error) => `killing it failed (${err.message}), so it may still be running`,
        );
        throw ApplicationFailure.create({
          type: fail.SshFailureType.CommandTimedOut,
          // A retry with this key would only find the killed run.
          nonRetryable: true,
          message: `${describe(status.dir)}: \`${fail.brief(opts.command)}\` did not finish within ${opts.timeoutMs} ms and ${killed}`,
        });
      }
      status = await unlessAborted(poll(progressBytes, boundMs()), opts.signal);
    }
  } catch (err) {
    if (!(err instanceof AbortedWait)) throw err;
    if ((opts.killOnAbort ?? defaultKillOnAbort)(err.reason)) {
      // If the kill cannot get through, the run has no cancelled marker and a later attempt
      // reattaches to it: still never two copies. The caller's reason is what it must see.
      await kill(`cancelled: ${err.reason.message}`).catch(() => undefined);
    }
    throw err.reason;
  }
}
