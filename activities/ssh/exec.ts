// One command on one open connection. Without a pty, closing the channel leaves the remote
// command running, so the command is wrapped to report its process group first: timeout and
// cancellation then kill that group through a second channel.
import type { Client, ClientChannel } from 'ssh2';
import * as fail from './errors';
import { OutputTail } from './outputTail';
import { killProcessGroupScript, shQuote } from './shell';
import type { CommandResult, RunOptions } from './types';
import type { SshTarget } from '../../common/sshTarget';

export interface ExecParams {
  client: Client;
  target: SshTarget;
  command: string;
  opts: RunOptions;
  outputLimitBytes: number;
  killGraceMs: number;
}

/** The command never started: safe to try again on another connection. */
export class ChannelNotOpened extends Error {
  constructor(
    readonly reason: Error,
    /** The connection is alive but the server refused another session (its MaxSessions). */
    readonly refusedByServer: boolean,
  ) {
    super(reason.message);
  }
}

export function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error(`cancelled: ${String(signal.reason ?? 'aborted')}`);
}

const PGID_MARKER = 'nova-upgrade-pgid=';
const PGID_LINE = new RegExp(`(^|\\n)${PGID_MARKER}(\\d+)\\n`);
// A login script that prints more than this before our marker gets its output passed through
// and the command can no longer be killed by group.
const PGID_SEARCH_LIMIT = 4096;

/**
 * sshd makes each session's shell a session leader, so `$$` before `exec` is the pgid of
 * everything the command starts. `sh -c` pins the user's command to POSIX sh whatever the
 * account's login shell is.
 */
export function wrapForProcessGroup(command: string): string {
  return `echo ${PGID_MARKER}$$; exec sh -c ${shQuote(command)}`;
}

/**
 * `watch` runs inside ssh2's callback: a fast command's output, exit status and close can
 * arrive in the same packet batch as the open confirmation, before any awaiting code resumes.
 */
function openExec<T>(client: Client, command: string, watch: (channel: ClientChannel) => T): Promise<{ watched: T }> {
  return new Promise((resolve, reject) => {
    try {
      client.exec(command, (err, channel) => {
        if (err) reject(new ChannelNotOpened(err, typeof (err as { reason?: unknown }).reason === 'number'));
        else resolve({ watched: watch(channel) });
      });
    } catch (err) {
      reject(new ChannelNotOpened(err as Error, false));
    }
  });
}

async function killGroup(client: Client, pgid: number, graceMs: number): Promise<void> {
  const script = `sh -c ${shQuote(killProcessGroupScript(String(pgid), graceMs))}`;
  const { watched } = await openExec(
    client,
    script,
    (channel) =>
      new Promise<void>((resolve) => {
        channel.on('close', () => resolve());
        channel.resume();
        channel.stderr.resume();
        channel.end();
      }),
  );
  await watched;
}

export async function execCommand(p: ExecParams): Promise<CommandResult> {
  if (p.opts.signal?.aborted) throw abortReason(p.opts.signal);
  const started = Date.now();
  const { watched } = await openExec(p.client, wrapForProcessGroup(p.command), (channel) =>
    superviseCommand(p, channel, started),
  );
  return watched;
}

function superviseCommand(p: ExecParams, channel: ClientChannel, started: number): Promise<CommandResult> {
  const { client, target, command, opts } = p;
  return new Promise<CommandResult>((resolve, reject) => {
    const stdout = new OutputTail(p.outputLimitBytes);
    const stderr = new OutputTail(p.outputLimitBytes);
    let beforePgid = Buffer.alloc(0);
    let pgidSearchDone = false;
    let pgid: number | undefined;
    let closed = false;
    const pidKnownOrClosed: Array<() => void> = [];
    let exit: { code: number | null; signal?: string } | undefined;
    let stopping = false;
    let settled = false;

    const settle = (outcome: CommandResult | Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const notify = () => pidKnownOrClosed.splice(0).forEach((wake) => wake());

    channel.on('data', (chunk: Buffer) => {
      if (pgidSearchDone) return stdout.push(chunk);
      beforePgid = Buffer.concat([beforePgid, chunk]);
      const found = PGID_LINE.exec(beforePgid.toString('latin1'));
      if (!found && beforePgid.length < PGID_SEARCH_LIMIT) return;
      pgidSearchDone = true;
      if (found) {
        // Anything a login script printed first stays in stdout, as it would with ssh(1).
        pgid = Number(found[2]);
        stdout.push(beforePgid.subarray(0, found.index + found[1].length));
        stdout.push(beforePgid.subarray(found.index + found[0].length));
      } else {
        stdout.push(beforePgid);
      }
      notify();
    });
    channel.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    channel.on('exit', (code: number | null, signal?: string) => {
      exit = { code, signal };
    });
    channel.on('close', () => {
      closed = true;
      notify();
      if (stopping) return;
      if (!exit) return settle(fail.connectionLost(target, command));
      settle({
        node: target.node,
        command,
        exitCode: exit.code,
        ...(exit.signal ? { signal: exit.signal } : {}),
        durationMs: Date.now() - started,
        stdout: stdout.toString(),
        stderr: stderr.toString(),
      });
    });

    // Only our own timeout error gets the kill failure appended; an abort reason belongs to the caller.
    const stop = async (outcome: Error, ownError: boolean) => {
      if (stopping || settled) return;
      stopping = true;
      if (!pgidSearchDone && !closed) {
        await new Promise<void>((wake) => {
          pidKnownOrClosed.push(wake);
          setTimeout(wake, p.killGraceMs);
        });
      }
      let killFailure = '';
      if (pgid !== undefined && Number.isInteger(pgid) && pgid > 1 && !(closed && exit)) {
        try {
          await killGroup(client, pgid, p.killGraceMs);
        } catch (err) {
          killFailure = ` (killing process group ${pgid} failed: ${(err as Error).message}; it may still be running)`;
        }
      }
      channel.close();
      if (killFailure && ownError) outcome.message += killFailure;
      settle(outcome);
    };
    const onAbort = () => void stop(abortReason(opts.signal!), false);
    const timeoutMs = opts.timeoutMs;
    const timer = timeoutMs
      ? setTimeout(() => void stop(fail.commandTimedOut(target, command, timeoutMs), true), timeoutMs)
      : undefined;
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();

    if (opts.stdin !== undefined) channel.end(opts.stdin);
    else channel.end();
  });
}
