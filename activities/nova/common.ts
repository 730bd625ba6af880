// What the activities that run remote commands share: the audit record, reads that must
// succeed, detached runs that fail with the command's own output.
import { cancellationSignal, heartbeat, nonRetryable } from '../common';
import type { CommandRecord, CommandResult, RemoteRunner } from '../ssh/types';
import type { SshTarget } from '../../common/sshTarget';

export interface NovaDeps {
  runner: RemoteRunner;
}

/** Inputs of activities that run a command detached on the node. */
export interface DetachedInput {
  target: SshTarget;
  command: string;
  /** Unique per workflow, step and operator retry: an activity retry reattaches with it. */
  key: string;
  /** The inventory's remoteStateDir. */
  stateDir: string;
  timeoutMs?: number;
  /** How often the runner looks at the detached command (the runner's default when absent). */
  pollMs?: number;
}

export function toRecord(r: CommandResult): CommandRecord {
  const rec: CommandRecord = { node: r.node, command: r.command, exitCode: r.exitCode, durationMs: r.durationMs };
  if (r.signal !== undefined) rec.signal = r.signal;
  if (r.reattached !== undefined) rec.reattached = r.reattached;
  return rec;
}

export function lastLines(text: string, count = 20): string {
  const lines = text.replace(/\s+$/, '').split(/\r?\n/);
  return lines.slice(-count).join('\n');
}

export function outputOf(r: CommandResult): string {
  return r.stderr.trim() ? `${r.stdout}\n${r.stderr}` : r.stdout;
}

/**
 * Heartbeats while a remote command runs: a real `nova-manage --version` or `nova-status`
 * imports nova for 4–15 s (measured on the real-nova lab, 2 busy cores), longer than a
 * heartbeat timeout sized for the stand-ins, and the activity would be timed out mid-read.
 */
export async function beatingWhile<T>(details: unknown, work: Promise<T>): Promise<T> {
  const timer = setInterval(() => heartbeat(details), 2000);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

/**
 * Reads must succeed for the activity to decide anything; a failing read is worth a retry
 * (keystone restarting, a busy database), and the retry policy bounds it.
 */
export async function runRead(
  runner: RemoteRunner,
  target: SshTarget,
  command: string,
  commands: CommandRecord[],
  timeoutMs?: number,
  outputLimitBytes?: number,
): Promise<CommandResult> {
  const r = await beatingWhile(
    { reading: command, node: target.node },
    runner.run(target, command, {
      timeoutMs,
      signal: cancellationSignal(),
      ...(outputLimitBytes ? { outputLimitBytes } : {}),
    }),
  );
  commands.push(toRecord(r));
  if (r.exitCode !== 0) {
    throw new Error(
      `on ${target.node}, \`${command}\` exited ${r.exitCode ?? r.signal}: ${lastLines(outputOf(r), 5) || '(no output)'}`,
    );
  }
  return r;
}

/**
 * A detached command's outcome is fixed by its key: a retry reattaches to the same finished
 * run and would see the same exit code, so a failure here needs an operator, not a retry.
 */
export async function runDetachedOrFail(
  runner: RemoteRunner,
  input: DetachedInput,
  what: string,
  commands: CommandRecord[],
  progress?: (tail: string) => unknown,
): Promise<CommandResult> {
  const r = await runner.runDetached(input.target, {
    key: input.key,
    command: input.command,
    stateDir: input.stateDir,
    timeoutMs: input.timeoutMs,
    pollMs: input.pollMs,
    signal: cancellationSignal(),
    onProgress: (tail) => heartbeat(progress ? progress(tail) : { step: what, tail: lastLines(tail, 5) }),
  });
  commands.push(toRecord(r));
  if (r.exitCode !== 0) {
    throw nonRetryable(
      'NovaCommandFailed',
      `${what} failed on ${input.target.node}: \`${input.command}\` exited ${r.exitCode ?? r.signal}. Last output:\n${lastLines(outputOf(r))}`,
      {
        node: input.target.node,
        command: input.command,
        exitCode: r.exitCode,
        tail: lastLines(outputOf(r)),
      },
    );
  }
  return r;
}
