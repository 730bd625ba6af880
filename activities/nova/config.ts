// Step one of the runbook: pin [upgrade_levels] compute=auto so upgraded services keep
// speaking RPC the oldest compute understands until every compute runs the new code.
import { createHash } from 'node:crypto';
import type { CommandRecord } from '../ssh/types';
import type { SshTarget } from '../../common/sshTarget';
import { renderCommand, shellQuote } from '../../inventory/commands';
import { getIniOption, setIniOption } from './ini';
import { runRead, toRecord, outputOf, lastLines, type NovaDeps } from './common';
import { nonRetryable } from '../common';

export { setIniOption, getIniOption } from './ini';

export interface SetUpgradeLevelsComputeInput {
  target: SshTarget;
  path: string;
  value?: 'auto';
  /** The rendered readFile command for `path`. */
  readCommand: string;
  /** Names the backup (`path.bak.<key>`); a timestamp when absent. */
  key?: string;
  /**
   * The inventory's writeFile template ({script} is the atomic write below): the same become
   * rule as every other command, so a nova.conf only root may write is written through sudo by
   * a non-root login. Absent: the script runs as the login.
   */
  writeTemplate?: string;
}

export interface SetUpgradeLevelsComputeResult {
  summary: string;
  alreadyDone: boolean;
  path: string;
  backupPath?: string;
  commands: CommandRecord[];
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/**
 * Keeps one backup per key, writes a sibling temp file that already carries the original's
 * mode and owner (cp -p), and renames it over the original, so a reader never sees half a
 * file. It refuses if the file changed since it was read: that would be someone else's edit,
 * or the same edit by a stale attempt of this step (the retry then finds it already done).
 */
export function atomicWriteScript(
  path: string,
  backupPath: string,
  expectedSha256: string,
  tempSuffix: string,
): string {
  const p = shellQuote(path);
  const b = shellQuote(backupPath);
  const t = shellQuote(`${path}.${tempSuffix}.tmp`);
  return [
    'set -e',
    // Writers of one file take turns, each checking it again once it holds the lock: an attempt
    // that hung on a frozen SSH link can resume beside the retry that replaced it, and both
    // would otherwise share the temp file. The lock is on the original's inode, so a writer that
    // waited for it sees the file replaced and refuses.
    `if command -v flock >/dev/null 2>&1; then exec 9<${p}; flock -x 9; fi`,
    `now=$(sha256sum < ${p} | cut -d' ' -f1)`,
    `if [ "$now" != ${expectedSha256} ]; then echo "changed since it was read" >&2; exit 3; fi`,
    `[ -e ${b} ] || cp -p ${p} ${b}`,
    `cp -p ${p} ${t}`,
    `cat > ${t}`,
    `mv -f ${t} ${p}`,
  ].join('\n');
}

export function createConfigActivities(deps: NovaDeps) {
  const { runner } = deps;

  async function setUpgradeLevelsCompute(input: SetUpgradeLevelsComputeInput): Promise<SetUpgradeLevelsComputeResult> {
    const { target, path, readCommand } = input;
    const value = input.value ?? 'auto';
    const commands: CommandRecord[] = [];
    const before = (await runRead(runner, target, readCommand, commands)).stdout;
    const edit = setIniOption(before, 'upgrade_levels', 'compute', value);
    if (!edit.changed) {
      return {
        summary: `${path} already pins [upgrade_levels] compute=${value} on ${target.node}`,
        alreadyDone: true,
        path,
        commands,
      };
    }

    const suffix = (input.key ?? new Date().toISOString()).replace(/[^A-Za-z0-9_.-]/g, '_');
    const original = sha256(before);
    // Named after the content it keeps too: a key reused by a later upgrade must not leave
    // this upgrade's original unsaved behind an older backup.
    const backupPath = `${path}.bak.${suffix}.${original.slice(0, 8)}`;
    const script = atomicWriteScript(path, backupPath, original, `nova-upgrade.${suffix}`);
    const command = input.writeTemplate ? renderCommand('writeFile', input.writeTemplate, { path, script }) : script;
    const write = await runner.run(target, command, { stdin: edit.text });
    commands.push({ ...toRecord(write), command: `write ${path} atomically (backup ${backupPath})` });
    if (write.exitCode === 3) {
      throw new Error(`${path} on ${target.node} changed while it was being edited; reading it again`);
    }
    if (write.exitCode !== 0) {
      throw nonRetryable(
        'NovaConfigWriteFailed',
        `could not write ${path} on ${target.node} (exit ${write.exitCode}): ${lastLines(outputOf(write), 5)}`,
        {
          node: target.node,
          path,
        },
      );
    }

    const after = (await runRead(runner, target, readCommand, commands)).stdout;
    if (after !== edit.text || getIniOption(after, 'upgrade_levels', 'compute') !== value) {
      throw nonRetryable(
        'NovaConfigVerifyFailed',
        `${path} on ${target.node} does not read back as written; the original is at ${backupPath}`,
        { node: target.node, path, backupPath },
      );
    }
    return {
      summary: `set [upgrade_levels] compute=${value} in ${path} on ${target.node} (backup ${backupPath})`,
      alreadyDone: false,
      path,
      backupPath,
      commands,
    };
  }

  return { setUpgradeLevelsCompute };
}
