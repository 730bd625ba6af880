// Every deployment profile's plan, command by command and host by host, against a golden file:
// what `nova-upgrade start --dry-run` prints for test/fixtures/dry-run/<profile>.yaml. A change
// to a profile shows up here as a diff to review; `UPDATE_GOLDEN=1` rewrites the files.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dryRunLines } from '../client/dryRun';
import { plannedSteps } from '../workflows/runbook';
import { loadInventory, validateInventory, InventoryError } from '../inventory/load';
import { parse } from 'yaml';
import { playbookFor } from '../bench/vs-ansible/playbook';

const DIR = join(__dirname, 'fixtures', 'dry-run');
const PROFILES = ['devstack', 'ubuntu', 'debian', 'rdo', 'kolla'] as const;

function dryRunStepIds(inv: ReturnType<typeof loadInventory>): string[] {
  return plannedSteps(inv).map((s) => s.id);
}

function plan(profile: string): string {
  return `${dryRunLines(loadInventory(join(DIR, `${profile}.yaml`))).join('\n')}\n`;
}

describe('dry run of each deployment profile', () => {
  for (const profile of PROFILES) {
    it(`${profile}: every command, host by host, as the golden file says`, () => {
      const golden = join(DIR, `${profile}.txt`);
      const text = plan(profile);
      if (process.env.UPDATE_GOLDEN === '1') writeFileSync(golden, text);
      expect(text).toBe(readFileSync(golden, 'utf8'));
    });
  }

  it("bench/vs-ansible's playbook plays every step of every profile's plan, so the two cannot drift", () => {
    // The bench was last broken by a renamed runbook line (change-compute-endpoint) that nothing ran.
    for (const profile of PROFILES) {
      const inv = loadInventory(join(DIR, `${profile}.yaml`));
      expect(playbookFor(inv).steps, profile).toEqual(dryRunStepIds(inv));
    }
  });

  it('devstack calls nova-status and placement-manage by their venv paths, and pip from the venv', () => {
    const text = plan('devstack');
    expect(text).toContain('[ctl1] /opt/stack/data/venv/bin/nova-status upgrade check');
    expect(text).toContain('[ctl1] /opt/stack/data/venv/bin/placement-manage db sync');
    expect(text).toContain('/opt/stack/data/venv/bin/pip install -e /opt/stack/nova');
    expect(text).not.toMatch(/sudo -H pip|[^/]\bpip install/);
  });

  it('each profile restarts its own units or containers, never another profile’s', () => {
    expect(plan('ubuntu')).toContain('[ctl1] sudo systemctl restart apache2');
    expect(plan('debian')).toContain('[ctl1] sudo systemctl restart nova-api');
    expect(plan('rdo')).toContain('[ctl1] sudo systemctl restart openstack-nova-conductor');
    const kolla = plan('kolla');
    expect(kolla).toContain('c=nova_conductor; o="$c-nova-upgrade-old"');
    expect(kolla).toContain('podman pull "$new"');
    for (const p of ['ubuntu', 'debian', 'rdo', 'kolla']) expect(plan(p)).not.toContain('devstack@');
  });

  it('packages keep services from starting on install, and say so in the command', () => {
    expect(plan('ubuntu')).toContain('exit 101');
    expect(plan('debian')).toContain('/usr/sbin/policy-rc.d');
    expect(plan('rdo')).toContain('SYSTEMD_OFFLINE=1 dnf -y upgrade');
  });
});

describe('profile refusals', () => {
  const base = parse(readFileSync(join(DIR, 'devstack.yaml'), 'utf8')) as Record<string, unknown>;
  const problems = (doc: Record<string, unknown>): string[] => {
    try {
      validateInventory(doc, 'test');
    } catch (e) {
      if (e instanceof InventoryError) return e.problems;
      throw e;
    }
    return [];
  };

  it('refuses an unknown profile, naming the field and the choices', () => {
    expect(problems({ ...base, profile: 'openstack-helm' })).toEqual([
      'profile: must be one of devstack, ubuntu, debian, rdo, kolla',
    ]);
  });

  it('refuses profile kolla without its images', () => {
    expect(problems({ ...base, profile: 'kolla' })).toEqual([
      'kolla: profile kolla needs the new images: kolla.images (registry/namespace, as docker_registry/docker_namespace) and kolla.tag (openstack_tag of the target release)',
    ]);
  });

  it('refuses a kolla section under another profile', () => {
    expect(problems({ ...base, profile: 'rdo', kolla: { images: 'r.example.com/kolla', tag: 'x' } })).toEqual([
      'kolla: read only with profile: kolla (this inventory says profile: rdo)',
    ]);
  });

  it('refuses a bad engine, image prefix and tag, naming each field', () => {
    expect(
      problems({ ...base, profile: 'kolla', kolla: { engine: 'lxc', images: 'r.example.com/kolla/', tag: 'a b' } }),
    ).toEqual([
      'kolla.engine: must be one of docker, podman',
      'kolla.images: must be a registry and namespace such as registry.example.com/kolla, without a trailing /',
      'kolla.tag: must be an image tag (letters, digits, "_", "." and "-")',
    ]);
  });

  it('refuses {venv} in a template of a profile without one', () => {
    expect(
      problems({ ...base, profile: 'ubuntu', commands: { upgradeCheck: '{venv}/bin/nova-status upgrade check' } }),
    ).toEqual([
      "commands.upgradeCheck: {venv} is devstack's global venv, and profile ubuntu has none; write the program's path",
    ]);
  });

  it('lets a per-command template override the profile', () => {
    const inv = validateInventory({
      ...base,
      profile: 'rdo',
      commands: { tempest: 'cd /srv/tempest && tempest run --smoke' },
    });
    expect(inv.commands.tempest).toBe('cd /srv/tempest && tempest run --smoke');
    expect(inv.commands.serviceRestart).toBe('sudo systemctl restart {unit}');
    expect(inv.nodes[0]!.services.map((s) => s.unit)).toContain('openstack-nova-api');
    expect(inv.openstack.osCloud).toBe('admin');
  });
});
