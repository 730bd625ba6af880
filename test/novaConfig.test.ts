// setUpgradeLevelsCompute over a real sshd, twice: the second run must find the pin and
// leave the file, its mode and its single backup alone.
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderCommand, DEFAULT_COMMANDS } from '../inventory/commands';
import { createConfigActivities } from '../activities/nova/config';
import { startFakeNovaNode, type FakeNovaNode } from './helpers/novaNode';
import { activityEnv, failureOf } from './helpers/activityEnv';

let node: FakeNovaNode;
beforeAll(async () => {
  node = await startFakeNovaNode('apicomp');
});
afterAll(() => node?.stop());

const NOVA_CONF =
  '[DEFAULT]\r\nmy_ip = 10.0.0.11\r\n\r\n[upgrade_levels]\r\n#compute = <None>\r\n\r\n[api]\r\nauth_strategy = keystone';

describe('setUpgradeLevelsCompute', () => {
  it('pins compute=auto once, atomically, with one backup; the second run changes nothing', async () => {
    const path = join(node.dir, 'nova.conf');
    writeFileSync(path, NOVA_CONF);
    chmodSync(path, 0o640);
    const { setUpgradeLevelsCompute } = createConfigActivities({ runner: node.runner });
    const input = {
      target: node.target,
      path,
      readCommand: renderCommand('readFile', DEFAULT_COMMANDS.readFile, { path }),
      key: 'wf1-pin',
    };

    const backup = `${path}.bak.wf1-pin.${createHash('sha256').update(NOVA_CONF).digest('hex').slice(0, 8)}`;
    const first = await activityEnv().run(setUpgradeLevelsCompute, input);
    expect(first.alreadyDone).toBe(false);
    expect(first.summary).toBe(`set [upgrade_levels] compute=auto in ${path} on apicomp (backup ${backup})`);
    const written = readFileSync(path, 'utf8');
    expect(written).toBe(
      '[DEFAULT]\r\nmy_ip = 10.0.0.11\r\n\r\n[upgrade_levels]\r\n#compute = <None>\r\ncompute = auto\r\n\r\n[api]\r\nauth_strategy = keystone',
    );
    expect(readFileSync(backup, 'utf8')).toBe(NOVA_CONF);
    expect(statSync(path).mode & 0o777).toBe(0o640);
    expect(first.commands.map((c) => c.exitCode)).toEqual([0, 0, 0]);

    const second = await activityEnv().run(setUpgradeLevelsCompute, { ...input, key: 'wf1-pin-retry' });
    expect(second.alreadyDone).toBe(true);
    expect(second.summary).toBe(`${path} already pins [upgrade_levels] compute=auto on apicomp`);
    expect(second.commands).toHaveLength(1);
    expect(readFileSync(path, 'utf8')).toBe(written);
    expect(readdirSync(node.dir).filter((f) => f.startsWith('nova.conf'))).toEqual([
      'nova.conf',
      backup.slice(node.dir.length + 1),
    ]);
  });

  it('fails non-retryably when the file cannot be written, naming node and path', async () => {
    const { setUpgradeLevelsCompute } = createConfigActivities({ runner: node.runner });
    const path = join(node.dir, 'blocked.conf');
    writeFileSync(path, '[DEFAULT]\n');
    // A directory where the temp file goes: root can write anywhere, but not into that.
    mkdirSync(`${path}.nova-upgrade.k.tmp`);
    const err = await failureOf(
      activityEnv().run(setUpgradeLevelsCompute, { target: node.target, path, readCommand: `cat ${path}`, key: 'k' }),
    );
    expect(err.type).toBe('NovaConfigWriteFailed');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain(`could not write ${path} on apicomp`);
    expect(readFileSync(path, 'utf8')).toBe('[DEFAULT]\n');
  });

  it('retries when the file changed between the read and the write', async () => {
    const path = join(node.dir, 'racy.conf');
    writeFileSync(path, '[DEFAULT]\n');
    const { setUpgradeLevelsCompute } = createConfigActivities({ runner: node.runner });
    // The read reports content the file does not have, as if someone edited it in between.
    const err = await failureOf(
      activityEnv().run(setUpgradeLevelsCompute, {
        target: node.target,
        path,
        readCommand: `printf '[api]\\n'`,
        key: 'race',
      }),
    );
    expect(err.nonRetryable).toBeUndefined();
    expect(err.message).toContain('changed while it was being edited');
    expect(readFileSync(path, 'utf8')).toBe('[DEFAULT]\n');
  });
});
