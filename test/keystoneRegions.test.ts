// Two regions in a real keystone (issue 11): keystone 30.0.0 from the real-nova lab's venv, on
// SQLite, and the real openstackclient 10.5.0 run over SSH on a node, as the upgrade's endpoint
// step runs it. The stand-in openstack of test/cloud.test.ts behaves the same way; this is where
// the real programs have the last word. Runs when NOVA_UPGRADE_VENVS
// names a pair (test/helpers/realVenvs.ts). Loopback only: 127.0.36.0/24.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeystoneActivities, type PointComputeEndpointInput } from '../activities/nova/keystone';
import { SshPool } from '../activities/ssh/pool';
import type { SshTarget } from '../common/sshTarget';
import { DEFAULT_COMMANDS } from '../inventory/commands';
import { ADMIN_PASSWORD } from '../lab/real/configs';
import { KeystoneAdmin } from '../lab/real/keystone';
import { SHARED_VENVS, venvRoot } from '../lab/real/realLab';
import { ensureKeyPair, startSshd, stopSshd } from '../lab/sshd';
import { activityEnv, failureOf } from './helpers/activityEnv';
import { REAL_VENVS } from './helpers/realVenvs';

const REAL = REAL_VENVS;
// Where scripts/openstack-venvs.sh built them (NOVA_UPGRADE_CACHE moves it, as for the real lab).
const KEYSTONE = join(venvRoot(), SHARED_VENVS.keystone);
const OSC = join(venvRoot(), SHARED_VENVS.openstackclient);
const KEYSTONE_ADDR = '127.0.36.1';
const KEYSTONE_PORT = 35736;
const NODE_ADDR = '127.0.36.2';
const NODE_PORT = 2236;
const AUTH_URL = `http://${KEYSTONE_ADDR}:${KEYSTONE_PORT}/v3`;
// Catalog URLs only: nothing ever connects to them.
const URLS = {
  'RegionOne/public': 'http://127.0.36.11:8774/v2.1',
  'RegionOne/internal': 'http://127.0.36.12:8774/v2.1',
  'RegionTwo/public': 'http://127.0.36.21:8774/v2.1',
};
const VIP = 'http://127.0.36.100:8774/v2.1';

const dir = mkdtempSync(join(tmpdir(), 'keystone-regions-'));
let keystone: ChildProcess | undefined;
let admin: KeystoneAdmin;
let computeServiceId = '';
let pool: SshPool;
let target: SshTarget;

function manage(...args: string[]): void {
  execFileSync(join(KEYSTONE, 'bin', 'keystone-manage'), ['--config-file', join(dir, 'keystone.conf'), ...args], {
    stdio: 'pipe',
  });
}

/** Every compute endpoint as keystone itself holds it, by region/interface. */
async function catalog(): Promise<Record<string, string>> {
  const r = await admin.call<{ endpoints: Array<{ region_id: string; interface: string; url: string }> }>(
    'GET',
    `/endpoints?service_id=${computeServiceId}`,
  );
  return Object.fromEntries(r.endpoints.map((e) => [`${e.region_id}/${e.interface}`, e.url]));
}

const input = (over: Partial<PointComputeEndpointInput>): PointComputeEndpointInput => ({
  target,
  osCloud: 'regions-admin',
  listTemplate: DEFAULT_COMMANDS.endpointList,
  setTemplate: DEFAULT_COMMANDS.endpointSet,
  url: VIP,
  ...over,
});

beforeAll(async () => {
  if (!REAL) return;
  const group = execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
  writeFileSync(
    join(dir, 'keystone.conf'),
    [
      '[database]',
      `connection = sqlite:///${join(dir, 'keystone.db')}`,
      '[fernet_tokens]',
      `key_repository = ${join(dir, 'fernet-keys')}`,
      '[credential]',
      `key_repository = ${join(dir, 'credential-keys')}`,
      '[token]',
      'provider = fernet',
      '',
    ].join('\n'),
  );
  manage('db_sync');
  const owner = ['--keystone-user', userInfo().username, '--keystone-group', group];
  manage('fernet_setup', ...owner);
  manage('credential_setup', ...owner);
  manage(
    'bootstrap',
    '--bootstrap-password',
    ADMIN_PASSWORD,
    '--bootstrap-public-url',
    AUTH_URL,
    '--bootstrap-region-id',
    'RegionOne',
  );
  // keystone's own WSGI application, served by the standard library's server: enough for a
  // handful of requests, without the lab's uwsgi.
  keystone = spawn(
    join(KEYSTONE, 'bin', 'python'),
    [
      '-c',
      `from wsgiref.simple_server import make_server\nfrom keystone.wsgi.api import application\nmake_server('${KEYSTONE_ADDR}', ${KEYSTONE_PORT}, application).serve_forever()`,
    ],
    { env: { ...process.env, OS_KEYSTONE_CONFIG_FILES: join(dir, 'keystone.conf') }, stdio: 'ignore' },
  );
  const deadline = Date.now() + 90_000;
  for (;;) {
    const up = await fetch(AUTH_URL).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) throw new Error(`keystone did not answer on ${AUTH_URL} within 90 s`);
    await new Promise((r) => setTimeout(r, 500));
  }
  admin = new KeystoneAdmin(`http://${KEYSTONE_ADDR}:${KEYSTONE_PORT}`);
  await admin.login();
  await admin.call('POST', '/regions', { region: { id: 'RegionTwo' } });
  const compute = await admin.ensure('services', 'service', 'nova', { type: 'compute' });
  computeServiceId = compute.id;
  for (const [where, url] of Object.entries(URLS)) {
    const [region, iface] = where.split('/');
    await admin.call('POST', '/endpoints', {
      endpoint: { service_id: compute.id, interface: iface, url, region_id: region, enabled: true },
    });
  }

  // The controller: a real sshd whose sessions find the real openstack client and a clouds.yaml.
  writeFileSync(
    join(dir, 'clouds.yaml'),
    [
      'clouds:',
      '  regions-admin:',
      '    auth:',
      `      auth_url: ${AUTH_URL}`,
      '      username: admin',
      `      password: ${ADMIN_PASSWORD}`,
      '      project_name: admin',
      '      user_domain_id: default',
      '      project_domain_id: default',
      '    identity_api_version: 3',
      '',
    ].join('\n'),
  );
  const key = ensureKeyPair(join(dir, 'id_ed25519'));
  const sshd = await startSshd({
    name: 'controller',
    dir: join(dir, 'sshd'),
    address: NODE_ADDR,
    port: NODE_PORT,
    authorizedKeys: key.publicKey,
    env: { PATH: `${join(OSC, 'bin')}:/usr/bin:/bin`, OS_CLIENT_CONFIG_FILE: join(dir, 'clouds.yaml') },
  });
  writeFileSync(join(dir, 'known_hosts'), `${sshd.knownHostsLine}\n`);
  target = {
    node: 'controller',
    host: NODE_ADDR,
    port: NODE_PORT,
    username: userInfo().username,
    privateKeyPath: key.privateKeyPath,
    knownHostsPath: join(dir, 'known_hosts'),
    connectTimeoutMs: 5000,
  };
  pool = new SshPool({ idleTimeoutMs: 5000 });
}, 240_000);

afterAll(async () => {
  if (!REAL) return;
  await pool?.close();
  stopSshd(join(dir, 'sshd'));
  keystone?.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

describe.runIf(REAL)("keystone's compute endpoint in two regions, on the real keystone and openstackclient", () => {
  const activities = () => createKeystoneActivities({ runner: pool });

  it('refuses to choose a region when the inventory names none, and changes nothing', async () => {
    const before = await catalog();
    const err = await failureOf(activityEnv().run(activities().pointComputeEndpointAtVip, input({})));
    expect(err.type).toBe('NovaEndpointRegionUnnamed');
    expect(err.message).toBe(
      "keystone's catalog has compute endpoints in regions RegionOne, RegionTwo (`OS_CLOUD=regions-admin openstack endpoint list --service compute -f json` on controller): name the region whose endpoint points at the VIP in openstack.region",
    );
    expect(await catalog()).toEqual(before);
  }, 120_000);

  it("changes only the named region's named interface, to exactly the inventory's URL, once", async () => {
    const before = await catalog();
    expect(before).toMatchObject(URLS);
    const r = await activityEnv().run(
      activities().pointComputeEndpointAtVip,
      input({ region: 'RegionTwo', interfaces: ['public'] }),
    );
    expect(r.alreadyDone).toBe(false);
    expect(r.region).toBe('RegionTwo');
    expect(Object.values(r.previousUrls)).toEqual([URLS['RegionTwo/public']]);
    expect(r.summary).toContain(`(was public ${r.endpointIds[0]} → ${URLS['RegionTwo/public']})`);
    // RegionOne's public and internal endpoints, and keystone's own, are as they were.
    expect(await catalog()).toEqual({ ...before, 'RegionTwo/public': VIP });

    const again = await activityEnv().run(
      activities().pointComputeEndpointAtVip,
      input({ region: 'RegionTwo', interfaces: ['public'] }),
    );
    expect(again.alreadyDone).toBe(true);
    expect(again.commands.some((c) => c.command.includes('endpoint set'))).toBe(false);
  }, 120_000);

  it('refuses a region the catalog lacks, naming the regions it has', async () => {
    const err = await failureOf(
      activityEnv().run(activities().pointComputeEndpointAtVip, input({ region: 'RegionThree' })),
    );
    expect(err.type).toBe('NovaComputeEndpointNotFound');
    expect(err.message).toContain('keystone has no public compute endpoint in region RegionThree');
    expect(err.message).toContain('lists regions RegionOne, RegionTwo');
  }, 120_000);
});
