// The database half of the runbook: new code, placement, api_db and cell db schema syncs, the
// pre-flight `nova-status upgrade check`, and the online data migrations after the upgrade.
import type { CommandRecord } from '../ssh/types';
import type { SshTarget } from '../../common/sshTarget';
import { CELL_COMMANDS_AT_ONCE } from '../../common/topology';
import {
  lastLines,
  outputOf,
  runDetachedOrFail,
  runRead,
  toRecord,
  type DetachedInput,
  type NovaDeps,
  beatingWhile,
} from './common';
import { activityContext, heartbeat, mapLimit, nonRetryable, cancellationSignal } from '../common';
import { parseUpgradeCheckOutput, type UpgradeCheck } from './novaStatus';
import { parseOnlineMigrationsOutput, type MigrationRow } from './onlineMigrations';

export interface InstallCodeInput extends DetachedInput {
  /** The rendered codeVersion command; prints the installed release. */
  versionCommand: string;
  version: string;
}

export interface StepResult {
  summary: string;
  alreadyDone: boolean;
  commands: CommandRecord[];
}

export interface InstallCodeResult extends StepResult {
  installedVersion: string;
}

export interface UpgradeCheckInput {
  target: SshTarget;
  command: string;
  timeoutMs?: number;
}

export interface UpgradeCheckResult {
  summary: string;
  outcome: 'success' | 'warning';
  checks: UpgradeCheck[];
  /** Checks that warned: the next gate shows them to the operator. */
  warnings: UpgradeCheck[];
  commands: CommandRecord[];
}

export interface OnlineDataMigrationsInput {
  target: SshTarget;
  /**
   * One rendered command per cell, with that cell's config: nova-manage migrates only the
   * [database] of the config it reads (plus the API database), never every cell. Each cell's
   * rounds run detached under `<keyPrefix>/<cell>-round-<n>`.
   */
  cells?: { name: string; command: string }[];
  /** 0.1.0's single command (one cell only); still read when a 0.1.0 run's activity retries. */
  command?: string;
  /** Without `cells`, each round runs detached under `<keyPrefix>-round-<n>`. */
  keyPrefix: string;
  stateDir: string;
  maxRounds: number;
  roundTimeoutMs?: number;
  pollMs?: number;
}

export interface OnlineDataMigrationsResult {
  summary: string;
  alreadyDone: boolean;
  /** The most rounds any cell needed. */
  rounds: number;
  /** Per cell, how many rounds it took to exit 0. */
  roundsByCell: Record<string, number>;
  /** The last round's table. */
  table: MigrationRow[];
  tableText: string;
  commands: CommandRecord[];
}

/** What a migrations round heartbeats; a retry after a worker death resumes from it. */
export interface MigrationsProgress {
  /** The round running (one command), or the lowest round running in any cell. */
  round: number;
  /** Written by workers before cells ran at once: the one cell whose round was running. */
  cell?: string;
  /** The cells that exited 0, with the rounds each took. */
  done?: Record<string, number>;
  /** Per cell running, the round in flight. */
  running?: Record<string, number>;
}

const VERSION_LINE = /^\d+\.\d+\.\d+\S*$/;

/** The release line, not a Python warning that happened to be printed last. */
function versionFrom(stdout: string, stderr: string): string {
  const lines = (text: string) =>
    text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean);
  const out = lines(stdout);
  return (
    [...out].reverse().find((l) => VERSION_LINE.test(l)) ??
    [...lines(stderr)].reverse().find((l) => VERSION_LINE.test(l)) ??
    out[out.length - 1] ??
    ''
  );
}

export function createManageActivities(deps: NovaDeps) {
  const { runner } = deps;

  async function installedVersion(target: SshTarget, command: string, commands: CommandRecord[]): Promise<string> {
    // nova-manage of old releases prints --version on stderr (argparse did so before py3.4).
    const r = await runRead(runner, target, command, commands);
    return versionFrom(r.stdout, r.stderr);
  }

  /** The workflow checks this beside the served microversion, which two releases can share. */
  async function readCodeVersion(input: {
    target: SshTarget;
    command: string;
  }): Promise<{ summary: string; version: string; commands: CommandRecord[] }> {
    const commands: CommandRecord[] = [];
    const version = await installedVersion(input.target, input.command, commands);
    return { summary: `nova ${version || '(unknown)'} is installed on ${input.target.node}`, version, commands };
  }

  async function installCode(input: InstallCodeInput): Promise<InstallCodeResult> {
    const commands: CommandRecord[] = [];
    const node = input.target.node;
    const before = await installedVersion(input.target, input.versionCommand, commands);
    if (before === input.version) {
      return {
        summary: `nova ${input.version} is already installed on ${node}`,
        alreadyDone: true,
        installedVersion: before,
        commands,
      };
    }
    await runDetachedOrFail(runner, input, `installing nova ${input.version}`, commands);
    const after = await installedVersion(input.target, input.versionCommand, commands);
    if (after !== input.version) {
      throw nonRetryable(
        'NovaCodeVersionMismatch',
        `after installing nova ${input.version} on ${node}, \`${input.versionCommand}\` reports "${after}"; check the install command`,
        {
          node,
          expected: input.version,
          found: after,
        },
      );
    }
    return {
      summary: `installed nova ${input.version} on ${node} (was ${before || 'unknown'})`,
      alreadyDone: false,
      installedVersion: after,
      commands,
    };
  }

  // Schema syncs apply only the migrations a database lacks, so running one again is a no-op:
  // they are idempotent by nature and there is no state worth checking first.
  /**
   * Placement's new code, before its db sync and restart (which would otherwise sync and restart
   * the old release again). A checkout and an editable install are idempotent; detached under its
   * key, so a retry after a worker death reattaches instead of running a second install.
   */
  async function installPlacement(input: DetachedInput & { release: string }): Promise<StepResult> {
    const commands: CommandRecord[] = [];
    await runDetachedOrFail(runner, input, `installing placement for nova ${input.release}`, commands);
    return {
      summary: `installed placement for nova ${input.release} on ${input.target.node}`,
      alreadyDone: false,
      commands,
    };
  }

  async function upgradePlacement(input: DetachedInput): Promise<StepResult> {
    const commands: CommandRecord[] = [];
    await runDetachedOrFail(runner, input, 'upgrading placement', commands);
    return {
      summary: `upgraded placement on ${input.target.node} (placement-manage db sync is idempotent)`,
      alreadyDone: false,
      commands,
    };
  }

  async function syncApiDb(input: DetachedInput): Promise<StepResult> {
    const commands: CommandRecord[] = [];
    await runDetachedOrFail(runner, input, 'nova-manage api_db sync', commands);
    return {
      summary: `synced the nova API database from ${input.target.node} (api_db sync is idempotent)`,
      alreadyDone: false,
      commands,
    };
  }

  async function syncCellDb(input: DetachedInput & { cell: string }): Promise<StepResult> {
    const commands: CommandRecord[] = [];
    await runDetachedOrFail(runner, input, `nova-manage db sync for ${input.cell}`, commands);
    return {
      summary: `synced the ${input.cell} database from ${input.target.node} (db sync is idempotent)`,
      alreadyDone: false,
      commands,
    };
  }

  async function runUpgradeCheck(input: UpgradeCheckInput): Promise<UpgradeCheckResult> {
    const { target, command } = input;
    const r = await beatingWhile(
      { running: command, node: target.node },
      runner.run(target, command, { timeoutMs: input.timeoutMs, signal: cancellationSignal() }),
    );
    const commands = [toRecord(r)];
    const checks = parseUpgradeCheckOutput(r.stdout);
    const warnings = checks.filter((c) => c.result === 'Warning');
    const failures = checks.filter((c) => c.result === 'Failure');
    const describe = (cs: UpgradeCheck[]) => cs.map((c) => `${c.name}: ${c.details ?? '(no details)'}`).join('; ');
    // oslo.upgradecheck exits with the worst result's code; a code without a table that
    // agrees with it means nova-status did not get to print one.
    if (r.exitCode === 0 && checks.length && !warnings.length && !failures.length) {
      return {
        summary: `nova-status upgrade check passed on ${target.node} (${checks.length} checks)`,
        outcome: 'success',
        checks,
        warnings,
        commands,
      };
    }
    if (r.exitCode === 1 && warnings.length && !failures.length) {
      return {
        summary: `nova-status upgrade check warns on ${target.node}: ${describe(warnings)}`,
        outcome: 'warning',
        checks,
        warnings,
        commands,
      };
    }
    if (r.exitCode === 2 && failures.length) {
      throw nonRetryable(
        'NovaUpgradeCheckFailed',
        `nova-status upgrade check failed on ${target.node}: ${describe(failures)}`,
        { node: target.node, command, failures, checks },
      );
    }
    if (r.exitCode === 255) {
      throw nonRetryable(
        'NovaUpgradeCheckError',
        `nova-status upgrade check raised an error on ${target.node} (\`${command}\` exited 255):\n${lastLines(outputOf(r))}`,
        { node: target.node, command },
      );
    }
    throw nonRetryable(
      'NovaUpgradeCheckUnreadable',
      `\`${command}\` on ${target.node} exited ${r.exitCode ?? r.signal} with ${checks.length} readable checks; output:\n${lastLines(outputOf(r))}`,
      {
        node: target.node,
        command,
        exitCode: r.exitCode,
      },
    );
  }

  /** One cell's rounds until exit 0: 1 means more to do, 2 a failed migration, 127 bad input. */
  async function migrateUntilDone(
    input: OnlineDataMigrationsInput,
    command: string,
    key: (round: number) => string,
    firstRound: number,
    beat: (round: number) => MigrationsProgress,
    commands: CommandRecord[],
    cell?: string,
  ): Promise<{ rounds: number; migrated: number; table: MigrationRow[]; tableText: string }> {
    const { target } = input;
    const where = cell ? `in ${cell} on ${target.node}` : `on ${target.node}`;
    for (let round = firstRound; round <= input.maxRounds; round++) {
      heartbeat(beat(round));
      const r = await runner.runDetached(target, {
        key: key(round),
        command,
        stateDir: input.stateDir,
        timeoutMs: input.roundTimeoutMs,
        pollMs: input.pollMs,
        signal: cancellationSignal(),
        onProgress: () => heartbeat(beat(round)),
      });
      commands.push(toRecord(r));
      const out = parseOnlineMigrationsOutput(r.stdout);
      if (r.exitCode === 0) {
        return {
          rounds: round,
          migrated: out.rows.reduce((n, row) => n + row.completed, 0),
          table: out.rows,
          tableText: out.table,
        };
      }
      if (r.exitCode === 1) continue;
      if (r.exitCode === 2) {
        throw nonRetryable(
          'NovaOnlineDataMigrationsFailed',
          `online data migrations failed in round ${round} ${where}${out.errors.length ? ` (${out.errors.join(', ')})` : ''}; see nova-manage's log. Table:\n${out.table}`,
          {
            node: target.node,
            ...(cell ? { cell } : {}),
            command,
            round,
            table: out.rows,
            errors: out.errors,
          },
        );
      }
      if (r.exitCode === 127) {
        throw nonRetryable(
          'NovaOnlineDataMigrationsBadInput',
          `nova-manage rejected \`${command}\` on ${target.node} as bad input (exit 127): ${lastLines(outputOf(r), 3)}`,
          { node: target.node, command },
        );
      }
      throw nonRetryable(
        'NovaCommandFailed',
        `\`${command}\` on ${target.node} exited ${r.exitCode ?? r.signal} in round ${round}:\n${lastLines(outputOf(r))}`,
        { node: target.node, command, round },
      );
    }
    throw nonRetryable(
      'NovaOnlineDataMigrationsIncomplete',
      `online data migrations ${where} still had work after ${input.maxRounds} rounds; run more rounds or raise --max-count`,
      {
        node: target.node,
        ...(cell ? { cell } : {}),
        command,
        rounds: input.maxRounds,
      },
    );
  }

  async function runOnlineDataMigrations(input: OnlineDataMigrationsInput): Promise<OnlineDataMigrationsResult> {
    const { target } = input;
    const commands: CommandRecord[] = [];
    const resumed = activityContext()?.info.heartbeatDetails as MigrationsProgress | undefined;
    // A round in flight when the worker died runs on under its key; resuming at that round
    // (and cell) reattaches to it instead of starting a second copy.
    const resumeRound = typeof resumed?.round === 'number' && resumed.round >= 1 ? resumed.round : 1;
    if (!input.cells) {
      const command = input.command ?? '';
      const one = await migrateUntilDone(
        input,
        command,
        (n) => `${input.keyPrefix}-round-${n}`,
        resumeRound,
        (round) => ({ round }),
        commands,
      );
      const alreadyDone = one.rounds === 1 && one.migrated === 0;
      const summary = alreadyDone
        ? `online data migrations had nothing left to migrate (${target.node})`
        : `online data migrations complete after ${one.rounds} round${one.rounds === 1 ? '' : 's'} (${target.node})`;
      return {
        summary,
        alreadyDone,
        rounds: one.rounds,
        roundsByCell: {},
        table: one.table,
        tableText: one.tableText,
        commands,
      };
    }
    const done: Record<string, number> = { ...(resumed?.done ?? {}) };
    const running: Record<string, number> = {};
    const beat = (cell: string, round: number): MigrationsProgress => {
      running[cell] = round;
      return { round: Math.min(...Object.values(running)), done: { ...done }, running: { ...running } };
    };
    // Where a dead worker left each cell: its round in flight reattaches under the same key.
    const firstRound = (cell: string): number => resumed?.running?.[cell] ?? (resumed?.cell === cell ? resumeRound : 1);
    // Every cell to its end before a failure is thrown (mapLimit), so a retry never starts a
    // round beside one still running in another cell.
    const results = await mapLimit(
      input.cells.filter((c) => done[c.name] === undefined),
      CELL_COMMANDS_AT_ONCE,
      async (cell) => {
        const r = await migrateUntilDone(
          input,
          cell.command,
          (n) => `${input.keyPrefix}/${cell.name}-round-${n}`,
          firstRound(cell.name),
          (round) => beat(cell.name, round),
          commands,
          cell.name,
        );
        delete running[cell.name];
        done[cell.name] = r.rounds;
        return r;
      },
    );
    const migrated = results.reduce((n, r) => n + r.migrated, 0);
    const last = results.at(-1) ?? { table: [] as MigrationRow[], tableText: '' };
    const rounds = Math.max(0, ...Object.values(done));
    const alreadyDone = rounds === 1 && migrated === 0;
    const perCell = input.cells
      .map((c) => `${c.name} ${done[c.name]} round${done[c.name] === 1 ? '' : 's'}`)
      .join(', ');
    const summary = alreadyDone
      ? `online data migrations had nothing left to migrate in ${input.cells.map((c) => c.name).join(', ')} (${target.node})`
      : `online data migrations complete in every cell: ${perCell} (${target.node})`;
    return { summary, alreadyDone, rounds, roundsByCell: done, table: last.table, tableText: last.tableText, commands };
  }

  return {
    readCodeVersion,
    installCode,
    installPlacement,
    upgradePlacement,
    syncApiDb,
    syncCellDb,
    runUpgradeCheck,
    runOnlineDataMigrations,
  };
}
