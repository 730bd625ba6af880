// Restarting, stopping, starting and HUPing nova's systemd units, each checked against what
// systemd says first so that a retry after a worker died never restarts a service twice.
import type { CommandRecord } from '../ssh/types';
import type { SshTarget } from '../../common/sshTarget';
import { lastLines, outputOf, runRead, toRecord, type NovaDeps, beatingWhile } from './common';
import { cancellationSignal, heartbeat, nonRetryable, sleep } from '../common';
import { shQuote } from '../ssh/shell';

/** Printed by a grouped SIGHUP before the unit whose HUP failed, so the error can name it. */
const HUP_FAILED = 'nova-upgrade: SIGHUP failed: ';

export interface ServiceState {
  mainPid: number;
  activeState: string;
  subState: string;
  /** Microseconds since boot when the main process started; 0 when it never did. */
  startedMonotonic: number;
  /**
   * A profile's own identity of the running service, when its state template prints one: a
   * container's id and start time (kolla). A new identity is a new process, as a new main pid
   * and start time are under systemd.
   */
  identity?: string;
}

/**
 * Parses `systemctl show --property=…` (key=value lines, in systemd's order, not ours), or the
 * same shape printed by another profile's state template (kolla's `inspect --format`).
 */
export function parseServiceState(output: string): ServiceState {
  const props = new Map<string, string>();
  for (const line of output.split(/\r?\n/)) {
    const eq = line.indexOf('=');
    if (eq > 0) props.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const activeState = props.get('ActiveState');
  if (activeState === undefined)
    throw new Error(`systemctl show printed no ActiveState: ${lastLines(output, 5) || '(nothing)'}`);
  return {
    mainPid: Number(props.get('MainPID') ?? 0) || 0,
    activeState,
    subState: props.get('SubState') ?? '',
    startedMonotonic: Number(props.get('ExecMainStartTimestampMonotonic') ?? 0) || 0,
    ...(props.get('Identity') ? { identity: props.get('Identity')! } : {}),
  };
}

interface UnitInput {
  target: SshTarget;
  unit: string;
  /** The rendered serviceState command. */
  stateCommand: string;
  /** e.g. `systemctl status --no-pager -n 30 <unit>` or a journalctl; shown when the unit fails. */
  statusCommand?: string;
  timeoutMs?: number;
  pollMs?: number;
}

export interface RestartServiceInput extends UnitInput {
  restartCommand: string;
  /** readServiceState's answer taken before the restart was first attempted. */
  before: { mainPid: number; startedMonotonic: number; identity?: string };
  key: string;
  stateDir: string;
}

/** With key and stateDir the command runs detached: a graceful nova-compute stop can take minutes. */
interface MaybeDetached {
  key?: string;
  stateDir?: string;
}

export interface StopServiceInput extends UnitInput, MaybeDetached {
  stopCommand: string;
}

export interface StartServiceInput extends UnitInput, MaybeDetached {
  startCommand: string;
}

export interface HupServiceInput {
  target: SshTarget;
  unit: string;
  command: string;
}

/** Every unit of one node to SIGHUP, each with its own rendered command, in one exchange. */
export interface HupServicesInput {
  target: SshTarget;
  hups: { unit: string; command: string }[];
}

export interface ServiceStepResult {
  summary: string;
  alreadyDone: boolean;
  state: ServiceState;
  commands: CommandRecord[];
}

const isActive = (s: ServiceState) => s.activeState === 'active';
// A unit whose main process exited with an error stops in "failed"; it is stopped all the same.
const isStopped = (s: ServiceState) => s.activeState === 'inactive' || s.activeState === 'failed';
const isNewProcess = (s: ServiceState, before: RestartServiceInput['before']) =>
  s.identity !== undefined && before.identity !== undefined
    ? s.identity !== before.identity
    : s.mainPid !== before.mainPid || s.startedMonotonic !== before.startedMonotonic;

/** One field of a `systemctl show` answer held in shell variable `v`, in a checked run's script. */
const stateField = (v: string, k: string) => `$(printf '%s\\n' "$${v}" | sed -n 's/^${k}=//p')`;

/** The state a checked run printed under `@@name`. */
function printedState(out: string, name: string): ServiceState | undefined {
  const m = new RegExp(`@@${name}\\n([\\s\\S]*?)(?=\\n@@|$)`).exec(out);
  return m ? parseServiceState(m[1]!) : undefined;
}

export function createServiceActivities(deps: NovaDeps) {
  const { runner } = deps;

  async function runStep(input: UnitInput & MaybeDetached, command: string, step: string, commands: CommandRecord[]) {
    const r =
      input.key && input.stateDir
        ? await runner.runDetached(input.target, {
            key: input.key,
            command,
            stateDir: input.stateDir,
            timeoutMs: input.timeoutMs ?? 120_000,
            pollMs: input.pollMs,
            signal: cancellationSignal(),
            onProgress: () => heartbeat({ unit: input.unit, step }),
          })
        : await beatingWhile(
            { running: command },
            runner.run(input.target, command, { timeoutMs: input.timeoutMs ?? 120_000, signal: cancellationSignal() }),
          );
    commands.push(toRecord(r));
    return r;
  }

  async function stateOf(input: UnitInput, commands: CommandRecord[]): Promise<ServiceState> {
    return parseServiceState((await runRead(runner, input.target, input.stateCommand, commands)).stdout);
  }

  async function failedToStart(
    input: UnitInput,
    state: ServiceState,
    commands: CommandRecord[],
    why: string,
  ): Promise<never> {
    let status = '';
    if (input.statusCommand) {
      // systemctl status exits 3 for a dead unit; its output is what matters.
      const r = await runner.run(input.target, input.statusCommand, { timeoutMs: 30_000 }).catch(() => undefined);
      if (r) {
        commands.push(toRecord(r));
        status = lastLines(outputOf(r), 30);
      }
    }
    throw nonRetryable(
      'NovaServiceFailedToStart',
      `${input.unit} on ${input.target.node} ${why} (ActiveState=${state.activeState}, SubState=${state.subState})${status ? `:\n${status}` : ''}`,
      {
        node: input.target.node,
        unit: input.unit,
        state,
        status,
      },
    );
  }

  /** Polls until `done` holds; systemd may report "activating" for a while after a start. */
  async function waitFor(
    input: UnitInput,
    commands: CommandRecord[],
    done: (s: ServiceState) => boolean,
    settled: (s: ServiceState) => boolean,
  ): Promise<ServiceState> {
    const deadline = Date.now() + (input.timeoutMs ?? 120_000);
    for (;;) {
      const s = await stateOf(input, commands);
      if (done(s) || settled(s) || Date.now() >= deadline) return s;
      heartbeat({ unit: input.unit, activeState: s.activeState, subState: s.subState });
      await sleep(input.pollMs ?? 500, cancellationSignal());
    }
  }

  async function readServiceState(input: {
    target: SshTarget;
    command: string;
  }): Promise<ServiceState & { summary: string; commands: CommandRecord[] }> {
    const commands: CommandRecord[] = [];
    const state = parseServiceState((await runRead(runner, input.target, input.command, commands)).stdout);
    return {
      ...state,
      summary: `${input.target.node}: ${state.activeState}/${state.subState}, main pid ${state.mainPid}`,
      commands,
    };
  }

  async function restartService(input: RestartServiceInput): Promise<ServiceStepResult> {
    const { target, unit, before } = input;
    const commands: CommandRecord[] = [];
    const now = await stateOf(input, commands);
    if (isActive(now) && isNewProcess(now, before)) {
      return {
        summary: `${unit} on ${target.node} already restarted (main pid ${before.mainPid} → ${now.mainPid})`,
        alreadyDone: true,
        state: now,
        commands,
      };
    }
    const r = await runner.runDetached(target, {
      key: input.key,
      command: input.restartCommand,
      stateDir: input.stateDir,
      timeoutMs: input.timeoutMs,
      pollMs: input.pollMs,
      signal: cancellationSignal(),
      onProgress: () => heartbeat({ unit, step: 'restarting' }),
    });
    commands.push(toRecord(r));
    // systemctl restart exits non-zero when the unit fails to come up; the unit's own state
    // and status say why, so they decide rather than the exit code alone.
    const after = await waitFor(
      input,
      commands,
      (s) => isActive(s) && isNewProcess(s, before),
      (s) => s.activeState === 'failed' || r.exitCode !== 0,
    );
    if (!isActive(after) || !isNewProcess(after, before)) {
      const why = isActive(after)
        ? 'is still running its old process after the restart'
        : 'did not become active after the restart';
      await failedToStart(
        input,
        after,
        commands,
        `${why} (\`${input.restartCommand}\` exited ${r.exitCode ?? r.signal})`,
      );
    }
    return {
      summary: `restarted ${unit} on ${target.node} (main pid ${before.mainPid} → ${after.mainPid})`,
      alreadyDone: false,
      state: after,
      commands,
    };
  }

  /**
   * The restart as ONE detached run on the node (issue 16): read the state, restart, and read
   * again until the unit settles, all in the run's own output. The "before" is recorded on the
   * node, in the run directory, so a retry after a worker death reattaches to the same run and
   * judges the same before and after: it never restarts twice, as the separate state-read
   * activity used to guarantee at the cost of one more activity and exchange (a restart took
   * 1.0-1.3 s on the lab for about 0.17 s of `systemctl restart`).
   * Proven up: active, a main process other than before (pid and start time), and that same
   * process still active at a second reading 100 ms later; a unit that fails or falls back to
   * inactive ends the wait at once, and fails the step with its status. The failure reads as
   * restartService's did, so holds and the faults test name it alike.
   */
  async function restartServiceChecked(
    input: UnitInput & { restartCommand: string; key: string; stateDir: string },
  ): Promise<ServiceStepResult> {
    const { target, unit } = input;
    const commands: CommandRecord[] = [];
    const limit = Math.max(1, Math.ceil((input.timeoutMs ?? 120_000) / 100));
    const script = [
      `before=$(${input.stateCommand})`,
      `printf '@@before\\n%s\\n' "$before"`,
      `${input.restartCommand}`,
      `printf '@@rc %s\\n' "$?"`,
      `b="${stateField('before', 'MainPID')}:${stateField('before', 'ExecMainStartTimestampMonotonic')}"`,
      `prev=; n=0`,
      `while :; do`,
      `  now=$(${input.stateCommand})`,
      `  a="${stateField('now', 'ActiveState')}"; p="${stateField('now', 'MainPID')}:${stateField('now', 'ExecMainStartTimestampMonotonic')}"`,
      `  case "$a" in failed|inactive) break ;; esac`,
      `  if [ "$a" = active ] && [ "$p" != "$b" ] && [ "$p" = "$prev" ]; then break; fi`,
      `  if [ "$a" = active ]; then prev=$p; else prev=; fi`,
      `  n=$((n + 1)); [ "$n" -ge ${limit} ] && break`,
      `  sleep 0.1 2>/dev/null || sleep 1`,
      `done`,
      `printf '@@after\\n%s\\n' "$now"`,
    ].join('\n');
    const r = await runner.runDetached(target, {
      key: input.key,
      command: script,
      stateDir: input.stateDir,
      timeoutMs: (input.timeoutMs ?? 120_000) + 30_000,
      pollMs: input.pollMs,
      signal: cancellationSignal(),
      onProgress: () => heartbeat({ unit, step: 'restarting' }),
    });
    commands.push({ ...toRecord(r), command: input.restartCommand });
    const out = outputOf(r);
    const section = (name: string) => {
      const state = printedState(out, name);
      if (!state)
        throw new Error(`the restart run of ${unit} on ${target.node} printed no ${name} state: ${lastLines(out, 5)}`);
      return state;
    };
    const before = section('before');
    const after = section('after');
    const rc = /@@rc (\d+)/.exec(out)?.[1];
    if (!isActive(after) || !isNewProcess(after, before)) {
      const why = isActive(after)
        ? 'is still running its old process after the restart'
        : 'did not become active after the restart';
      await failedToStart(input, after, commands, `${why} (\`${input.restartCommand}\` exited ${rc ?? '?'})`);
    }
    return {
      summary: `restarted ${unit} on ${target.node} (main pid ${before.mainPid} → ${after.mainPid})${r.reattached ? ', found done by its run on the node' : ''}`,
      alreadyDone: false,
      state: after,
      commands,
    };
  }

  /**
   * A detached stop or start as ONE run on the node, as restartServiceChecked is: read the
   * state, act unless the unit is already where it should be, and read again until it settles,
   * all in the run's own output. A retry after a worker death reattaches to the same run and
   * judges its before and after; it never acts twice. Apart, the read, the run and the read after
   * were three exchanges or more: a compute's stop took 3.8 s and its start 3.8 s for 3 s on the
   * node each (bench/fleet.ts, 100 virtual computes, the batch profile).
   * A run claimed by a worker before this change printed only the command's output: its end is
   * then judged by a fresh read, as before.
   */
  async function runChecked(
    input: UnitInput & { key: string; stateDir: string },
    command: string,
    wanted: 'stopped' | 'active',
    step: string,
    commands: CommandRecord[],
  ): Promise<{ after: ServiceState; acted: boolean; rc?: string; reattached: boolean }> {
    const limit = Math.max(1, Math.ceil((input.timeoutMs ?? 120_000) / 100));
    const there = wanted === 'stopped' ? 'inactive|failed' : 'active';
    // A start also ends on "failed" (the new process died): the step fails with its status.
    const settled = wanted === 'stopped' ? 'inactive|failed' : 'active|failed';
    const script = [
      `before=$(${input.stateCommand})`,
      `printf '@@before\\n%s\\n' "$before"`,
      `case "${stateField('before', 'ActiveState')}" in`,
      `  ${there}) printf '@@already\\n' ;;`,
      `  *) ${command}`,
      `     printf '@@rc %s\\n' "$?" ;;`,
      `esac`,
      `n=0`,
      `while :; do`,
      `  now=$(${input.stateCommand})`,
      `  case "${stateField('now', 'ActiveState')}" in ${settled}) break ;; esac`,
      `  n=$((n + 1)); [ "$n" -ge ${limit} ] && break`,
      `  sleep 0.1 2>/dev/null || sleep 1`,
      `done`,
      `printf '@@after\\n%s\\n' "$now"`,
    ].join('\n');
    const r = await runner.runDetached(input.target, {
      key: input.key,
      command: script,
      stateDir: input.stateDir,
      timeoutMs: (input.timeoutMs ?? 120_000) + 30_000,
      pollMs: input.pollMs,
      signal: cancellationSignal(),
      onProgress: () => heartbeat({ unit: input.unit, step }),
    });
    commands.push({ ...toRecord(r), command });
    const out = outputOf(r);
    const after = printedState(out, 'after');
    const reattached = !!r.reattached;
    if (!after) {
      // The run of a worker before this change: the command alone. Its unit's state decides.
      const done = wanted === 'stopped' ? isStopped : isActive;
      const state = await waitFor(input, commands, done, (s) => wanted === 'active' && s.activeState === 'failed');
      return { after: state, acted: true, rc: r.exitCode === undefined ? undefined : String(r.exitCode), reattached };
    }
    return {
      after,
      acted: !/^@@already$/m.test(out),
      rc: /@@rc (\d+)/.exec(out)?.[1],
      reattached,
    };
  }

  async function stopService(input: StopServiceInput): Promise<ServiceStepResult> {
    const { target, unit } = input;
    const commands: CommandRecord[] = [];
    if (input.key && input.stateDir) {
      const c = await runChecked(
        { ...input, key: input.key, stateDir: input.stateDir },
        input.stopCommand,
        'stopped',
        'stopping',
        commands,
      );
      if (!isStopped(c.after))
        throw new Error(
          `${unit} on ${target.node} is still ${c.after.activeState} after \`${input.stopCommand}\` (exit ${c.rc ?? '?'})`,
        );
      // Found stopped, or stopped by this step's earlier attempt (a retry reattached to its run).
      if (!c.acted || c.reattached)
        return { summary: `${unit} on ${target.node} is already stopped`, alreadyDone: true, state: c.after, commands };
      return { summary: `stopped ${unit} on ${target.node}`, alreadyDone: false, state: c.after, commands };
    }
    const now = await stateOf(input, commands);
    if (isStopped(now))
      return { summary: `${unit} on ${target.node} is already stopped`, alreadyDone: true, state: now, commands };
    const r = await runStep(input, input.stopCommand, 'stopping', commands);
    const after = await waitFor(input, commands, isStopped, () => false);
    if (!isStopped(after)) {
      throw new Error(
        `${unit} on ${target.node} is still ${after.activeState} after \`${input.stopCommand}\` (exit ${r.exitCode}): ${lastLines(outputOf(r), 5)}`,
      );
    }
    return { summary: `stopped ${unit} on ${target.node}`, alreadyDone: false, state: after, commands };
  }

  async function startService(input: StartServiceInput): Promise<ServiceStepResult> {
    const { target, unit } = input;
    const commands: CommandRecord[] = [];
    if (input.key && input.stateDir) {
      const c = await runChecked(
        { ...input, key: input.key, stateDir: input.stateDir },
        input.startCommand,
        'active',
        'starting',
        commands,
      );
      if (!isActive(c.after))
        await failedToStart(
          input,
          c.after,
          commands,
          `did not become active after \`${input.startCommand}\` (exit ${c.rc ?? '?'})`,
        );
      if (!c.acted || c.reattached)
        return {
          summary: `${unit} on ${target.node} is already running (main pid ${c.after.mainPid})`,
          alreadyDone: true,
          state: c.after,
          commands,
        };
      return {
        summary: `started ${unit} on ${target.node} (main pid ${c.after.mainPid})`,
        alreadyDone: false,
        state: c.after,
        commands,
      };
    }
    const now = await stateOf(input, commands);
    if (isActive(now))
      return {
        summary: `${unit} on ${target.node} is already running (main pid ${now.mainPid})`,
        alreadyDone: true,
        state: now,
        commands,
      };
    const r = await runStep(input, input.startCommand, 'starting', commands);
    const after = await waitFor(input, commands, isActive, (s) => s.activeState === 'failed');
    if (!isActive(after))
      await failedToStart(
        input,
        after,
        commands,
        `did not become active after \`${input.startCommand}\` (exit ${r.exitCode})`,
      );
    return {
      summary: `started ${unit} on ${target.node} (main pid ${after.mainPid})`,
      alreadyDone: false,
      state: after,
      commands,
    };
  }

  // Not idempotent, but a second HUP only makes a nova service reload its config and reset
  // its logging once more, so a retry is harmless. uwsgi's nova-api takes HUP as a full
  // reload that drops in-flight requests: the workflow restarts n-api behind a drained
  // backend instead and never HUPs it.
  async function hupService(input: HupServiceInput): Promise<{ summary: string; commands: CommandRecord[] }> {
    const { target, unit, command } = input;
    const r = await beatingWhile(
      { running: command },
      runner.run(target, command, { timeoutMs: 30_000, signal: cancellationSignal() }),
    );
    if (r.exitCode !== 0) {
      throw new Error(
        `sending HUP to ${unit} on ${target.node} failed: \`${command}\` exited ${r.exitCode ?? r.signal}: ${lastLines(outputOf(r), 5)}`,
      );
    }
    return { summary: `sent HUP to ${unit} on ${target.node}`, commands: [toRecord(r)] };
  }

  /**
   * One exchange for all of a node's units. Each HUP runs in its own subshell, so a template that
   * exits ends only its own; the first that fails stops the rest and is named by the marker it
   * prints. A SIGHUP only makes a service re-read its config and lift the RPC pin, so a retry
   * that sends it again is harmless.
   */
  async function hupServices(input: HupServicesInput): Promise<{ summary: string; commands: CommandRecord[] }> {
    const { target, hups } = input;
    if (!hups.length)
      throw nonRetryable('NovaBadInput', `no service to SIGHUP on ${target.node}`, { node: target.node });
    const script = hups
      .map(({ unit, command }) => `( ${command} ) || { echo ${shQuote(`${HUP_FAILED}${unit}`)} >&2; exit 1; }`)
      .join('\n');
    const r = await beatingWhile(
      { running: script },
      runner.run(target, script, { timeoutMs: 30_000, signal: cancellationSignal() }),
    );
    if (r.exitCode !== 0) {
      const failedUnit = outputOf(r)
        .split('\n')
        .find((l) => l.startsWith(HUP_FAILED))
        ?.slice(HUP_FAILED.length);
      const sent = failedUnit
        ? hups
            .slice(
              0,
              hups.findIndex((h) => h.unit === failedUnit),
            )
            .map((h) => h.unit)
        : [];
      throw new Error(
        `sending HUP to ${failedUnit ?? hups.map((h) => h.unit).join(', ')} on ${target.node} failed (exit ${r.exitCode ?? r.signal})${sent.length ? ` after ${sent.join(', ')} had it` : ''}: ${lastLines(outputOf(r), 5)}`,
      );
    }
    return { summary: `sent HUP to ${hups.map((h) => h.unit).join(', ')} on ${target.node}`, commands: [toRecord(r)] };
  }

  return {
    readServiceState,
    restartService,
    restartServiceChecked,
    stopService,
    startService,
    hupService,
    hupServices,
  };
}
