// The real lab's tempest: tempest 47.0.0's own workspace (`tempest init`) on the controller,
// a tempest.conf against the lab's keystone (no glance, neutron or cinder) with pre-provisioned
// accounts, the flavors devstack creates, and an include list of compute API tests that need no
// server (lab/tempest/real-include-list.txt). The inventory's tempest template runs it through
// stestr as tempest does: `tempest run --include-list`.
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeText } from '../node/env';
import { labAsset } from '../install';
import { ADMIN_PASSWORD, keystoneUrl, REGION } from './configs';
import { KeystoneAdmin } from './keystone';
import { runNodeBin, type NodeRunner } from './realLab';

export const REAL_TEMPEST_LIST = 'real-include-list.txt';

/** devstack's m1.nano and m1.micro, tempest's flavor_ref and flavor_ref_alt. */
const FLAVORS = [
  { id: '42', name: 'm1.nano', ram: 128, vcpus: 1, disk: 1 },
  { id: '84', name: 'm1.micro', ram: 192, vcpus: 1, disk: 1 },
];

export const realTempestDir = (controllerRoot: string) => join(controllerRoot, 'tempest');

/** The template the real lab's inventory gives the tool: the workspace's stestr, the lab's list. */
export function realTempestCommand(controllerRoot: string): string {
  const ws = realTempestDir(controllerRoot);
  // Two workers, as stestr picks on this 2-core machine; said explicitly so a bigger CI host
  // does not load the lab's two uwsgi workers per API with more.
  return `cd ${ws} && tempest run --include-list ${join(ws, REAL_TEMPEST_LIST)} --concurrency 2`;
}

/**
 * tempest's pre-provisioned accounts (accounts.yaml), made once at `lab up`. Dynamic
 * credentials cost about 15 keystone calls per test class (a project, users, role grants, and
 * their deletion): 336 requests and 7 min for 23 tests at load average 12, almost all of it
 * keystone. A compute test class takes a member and a reader of the same project (tempest's
 * project_reader) and an admin: three projects of each pair and two admins, so two stestr
 * workers never wait for one another's lock.
 */
const ACCOUNTS: Array<{ user: string; project: string; roles: string[]; admin?: boolean }> = [
  ...[1, 2, 3].flatMap((i) => [
    { user: `tempest-member-${i}`, project: `tempest-${i}`, roles: ['member'] },
    { user: `tempest-reader-${i}`, project: `tempest-${i}`, roles: ['reader'] },
  ]),
  ...[1, 2].map((i) => ({ user: `tempest-admin-${i}`, project: `tempest-admin-${i}`, roles: ['admin'], admin: true })),
];

export function accountsYaml(): string {
  return ACCOUNTS.map(
    (a) =>
      `- username: '${a.user}'\n  project_name: '${a.project}'\n  password: '${ADMIN_PASSWORD}'\n  domain_name: 'Default'\n  roles:\n${a.roles.map((r) => `  - '${r}'\n`).join('')}${a.admin ? "  types:\n  - 'admin'\n" : ''}`,
  ).join('');
}

export function tempestConf(ws: string, controllerAddress: string): string {
  return `[DEFAULT]
log_dir = ${join(ws, 'logs')}
log_file = tempest.log

[oslo_concurrency]
lock_path = ${join(ws, 'tempest_lock')}

[auth]
use_dynamic_credentials = False
test_accounts_file = ${join(ws, 'etc', 'accounts.yaml')}
default_credentials_domain_name = Default

[identity]
uri_v3 = ${keystoneUrl(controllerAddress)}/v3
auth_version = v3
region = ${REGION}
v3_endpoint_type = public

[identity-feature-enabled]
api_v2 = False

[compute]
region = ${REGION}
endpoint_type = publicURL
flavor_ref = ${FLAVORS[0]!.id}
flavor_ref_alt = ${FLAVORS[1]!.id}
min_compute_nodes = 1
min_microversion = 2.1
max_microversion = latest

[compute-feature-enabled]
console_output = False
resize = False
snapshot = False
live_migration = False
cold_migration = False
interface_attach = False

# glance = True only because every compute admin test class builds an image client in its
# setup (tempest/api/compute/base.py, BaseV2ComputeAdminTest); no test on the list calls it.
[service_available]
nova = True
glance = True
neutron = False
cinder = False
swift = False

[validation]
run_validation = False
`;
}

async function ensureAccounts(controllerAddress: string): Promise<void> {
  const k = new KeystoneAdmin(keystoneUrl(controllerAddress));
  await k.login();
  const roles = new Map<string, string>();
  for (const r of new Set(ACCOUNTS.flatMap((a) => a.roles))) roles.set(r, (await k.ensure('roles', 'role', r, {})).id);
  for (const a of ACCOUNTS) {
    const project = await k.ensure('projects', 'project', a.project, { domain_id: 'default' });
    const user = await k.ensure('users', 'user', a.user, {
      domain_id: 'default',
      password: ADMIN_PASSWORD,
      default_project_id: project.id,
    });
    for (const r of a.roles) await k.call('PUT', `/projects/${project.id}/users/${user.id}/roles/${roles.get(r)!}`);
  }
}

async function ensureFlavors(controllerAddress: string, computeUrl: string): Promise<void> {
  const k = new KeystoneAdmin(keystoneUrl(controllerAddress));
  await k.login();
  const token = k.authToken;
  for (const f of FLAVORS) {
    const r = await fetch(`${computeUrl}/flavors`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-auth-token': token },
      body: JSON.stringify({ flavor: f }),
    });
    // 409: it exists already (a second `lab up`).
    if (r.status !== 200 && r.status !== 409)
      throw new Error(`nova-api at ${computeUrl} refused flavor ${f.name}: HTTP ${r.status} ${await r.text()}`);
  }
}

/** The workspace, its config and list, and the flavors tempest's config names; idempotent. */
export async function setUpRealTempest(ctl: NodeRunner, controllerAddress: string, computeUrl: string): Promise<void> {
  const ws = realTempestDir(ctl.root);
  if (!existsSync(join(ws, '.stestr.conf'))) await runNodeBin(ctl, 'tempest', ['init', ws]);
  writeText(join(ws, 'etc', 'tempest.conf'), tempestConf(ws, controllerAddress));
  writeText(join(ws, 'etc', 'accounts.yaml'), accountsYaml());
  copyFileSync(labAsset(join('tempest', REAL_TEMPEST_LIST)), join(ws, REAL_TEMPEST_LIST));
  await Promise.all([ensureAccounts(controllerAddress), ensureFlavors(controllerAddress, computeUrl)]);
}
