// docker-compose.yml is checked against the Compose v2 spec by dclint (no Docker engine here).
// The broken copy proves the check can fail; a validator that accepts anything proves nothing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { repoRoot } from '../client/paths';

const root = repoRoot();
const scratch = mkdtempSync(join(tmpdir(), 'nova-upgrade-compose-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function dclint(file: string): { status: number | null; output: string } {
  // --max-warnings 0: style findings fail too, so the file stays clean rather than "valid".
  const r = spawnSync(join(root, 'node_modules', '.bin', 'dclint'), [file, '--max-warnings', '0', '--color', 'false'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('docker-compose.yml', () => {
  const original = readFileSync(join(root, 'docker-compose.yml'), 'utf8');

  it('passes dclint cleanly', () => {
    const r = dclint(join(root, 'docker-compose.yml'));
    expect(r.output).not.toMatch(/error|warning/);
    expect(r.status).toBe(0);
  });

  it('fails dclint when a service carries a key the spec does not know', () => {
    const broken = original.replace(/^  worker:\n/m, '  worker:\n    restart_policy_typo: always\n');
    expect(broken).not.toBe(original);
    const file = join(scratch, 'docker-compose.yml');
    writeFileSync(file, broken);
    const r = dclint(file);
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/invalid-schema/);
  });

  it('runs the scripts and config that `server start --stack postgres` runs natively', () => {
    type Service = {
      volumes?: string[];
      command?: string[];
      entrypoint?: string[];
      environment?: Record<string, unknown>;
    };
    const services = (parse(original) as { services: Record<string, Service> }).services;
    const mounted = (s: Service) => s.volumes?.includes('./deploy/compose:/nova-upgrade:ro');
    // What client/teamStack.ts runs from deploy/compose/, compose must run from the same mount.
    expect([mounted(services.temporal!), services.temporal!.command]).toEqual([
      true,
      ['/nova-upgrade/start-temporal.sh'],
    ]);
    expect([mounted(services['temporal-schema']!), services['temporal-schema']!.command]).toEqual([
      true,
      ['/nova-upgrade/setup-postgres.sh'],
    ]);
    expect([mounted(services['temporal-search-attributes']!), services['temporal-search-attributes']!.command]).toEqual(
      [true, ['/nova-upgrade/create-search-attributes.sh']],
    );
    const teamStack = readFileSync(join(root, 'client', 'teamStack.ts'), 'utf8');
    for (const script of ['start-temporal.sh', 'setup-postgres.sh', 'create-search-attributes.sh'])
      expect(teamStack).toContain(`'${script}'`);
  });

  it('pins every image and keeps secrets out of the environment', () => {
    for (const [, image] of original.matchAll(/^\s+image:\s*(\S+)/gm)) expect(image, image).toMatch(/:[0-9][^:]*$/);
    expect(original).not.toMatch(/auto-setup/);
    expect(original).toMatch(/temporalio\/server:1\.29\./);
    expect(original).not.toMatch(/^\s+[A-Z_]*(SSH|PRIVATE)_KEY[A-Z_]*:/m);
    for (const name of ['UpgradePhase', 'UpgradeStep', 'UpgradeStatus', 'NovaCloud']) {
      expect(readFileSync(join(root, 'deploy', 'compose', 'create-search-attributes.sh'), 'utf8')).toContain(name);
    }
  });
});
