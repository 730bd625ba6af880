// The ssh config as OpenSSH reads it: every case is also resolved by the real `ssh -G` (the
// installed OpenSSH client), and where the two disagree the test fails; refusals are checked
// for their exact sentence.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  configSources,
  localContext,
  parseJump,
  resolveHostConfig,
  SshConfigError,
  type LocalContext,
} from '../activities/ssh/sshConfig';
import { resolveRoute } from '../activities/ssh/route';
import { sshTargetFor } from '../common/sshTarget';
import { validateInventory } from '../inventory/load';

const root = mkdtempSync(join(tmpdir(), 'ssh-config-test-'));
const home = join(root, 'home');
mkdirSync(join(home, '.ssh'), { recursive: true });
const ctx: LocalContext = { ...localContext(), home, env: { HOME: home } };
const passwdHome = userInfo().homedir;

afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function configFile(text: string): string {
  const path = join(root, `config${n++}`);
  writeFileSync(path, text);
  return path;
}

/** What `ssh -G` says, keyword → values. */
function sshG(file: string, host: string, extra: string[] = []): Record<string, string[]> {
  const out = execFileSync('ssh', ['-G', '-F', file, ...extra, host], {
    encoding: 'utf8',
    env: { ...process.env, HOME: home },
  });
  const map: Record<string, string[]> = {};
  for (const line of out.split('\n')) {
    const i = line.indexOf(' ');
    if (i < 0) continue;
    (map[line.slice(0, i)] ??= []).push(line.slice(i + 1));
  }
  return map;
}

function ours(file: string, host: string, cl: { user?: string; port?: number } = {}) {
  return resolveHostConfig(
    { host, ...cl },
    configSources(file, ctx),
    { defaultUser: ctx.localUser, defaultPort: 22 },
    ctx,
  );
}

/** Compares what both resolve for the keywords nova-upgrade uses. */
function expectSameAsOpenSsh(file: string, host: string, cl: { user?: string; port?: number } = {}) {
  const extra = [...(cl.user ? ['-l', cl.user] : []), ...(cl.port ? ['-p', String(cl.port)] : [])];
  const g = sshG(file, host, extra);
  const r = ours(file, host, cl);
  // ssh expands ~ from the passwd entry, and the test's home is a temporary $HOME.
  const tilde = (p: string) =>
    p.startsWith('~/')
      ? join(home, p.slice(2))
      : p.startsWith(`${passwdHome}/`)
        ? join(home, p.slice(passwdHome.length + 1))
        : p;
  expect({
    hostname: r.hostname,
    user: r.user,
    port: String(r.port),
    proxyjump: r.proxyJump.length ? r.proxyJump.join(',') : undefined,
    userknownhostsfile: r.userKnownHostsFiles.join(' '),
    identityfile: r.identityFiles,
  }).toEqual({
    hostname: g.hostname![0],
    user: g.user![0],
    port: g.port![0],
    proxyjump: g.proxyjump?.[0],
    userknownhostsfile: g.userknownhostsfile![0]!.split(' ').map(tilde).join(' '),
    identityfile: g.identityfile!.map(tilde),
  });
  return r;
}

describe('ssh config resolution, checked against ssh -G', () => {
  const main = configFile(`# a comment
Host web-* !web-9
  User wildcard
  Port 2201

Host bastion
  HostName 127.0.28.10
  User jumper
  Port 2222
  IdentityFile ~/.ssh/bastion_key

Host c1 c2
  HostName 10.0.0.%h
  User = ops # trailing comment
  IdentityFile=~/.ssh/one
  IdentityFile "~/.ssh/with space"
  ProxyJump bastion
  UserKnownHostsFile ~/.ssh/fleet_hosts /etc/ssh/fleet2

Host c1
  User never-used
  IdentityFile ~/.ssh/two

Host chain
  HostName 10.1.0.5
  ProxyJump alice@j1:2022,j2

Host MixedCase
  Port 2300

Match originalhost m1
  User matched

Match host 10.9.* user root
  Port 2400

Host m2
  HostName 10.9.0.1

Host *
  User fallback
  IdentityFile ~/.ssh/last
`);

  it.each(['web-1', 'web-9', 'bastion', 'c1', 'c2', 'chain', 'MixedCase', 'mixedcase', 'm1', 'm2', 'other.example'])(
    'resolves %s as ssh does',
    (host) => {
      expectSameAsOpenSsh(main, host);
    },
  );

  it('lets the inventory beat the config, as ssh -l and -p do', () => {
    const r = expectSameAsOpenSsh(main, 'bastion', { user: 'inv', port: 2999 });
    expect(r).toMatchObject({ user: 'inv', port: 2999, hostname: '127.0.28.10' });
  });

  it('keeps the first value, and IdentityFile accumulates in order', () => {
    const r = ours(main, 'c1');
    expect(r.user).toBe('ops');
    expect(r.hostname).toBe('10.0.0.c1');
    expect(r.identityFiles).toEqual([
      join(home, '.ssh/one'),
      join(home, '.ssh/with space'),
      join(home, '.ssh/two'),
      join(home, '.ssh/last'),
    ]);
    expect(r.sources.user).toBe(`${main} line 14`);
  });

  it('follows Include inside a Host block, relative to ~/.ssh, and only for that block', () => {
    writeFileSync(join(home, '.ssh', 'fleet.conf'), 'Host inc\n  Port 4444\nHost *\n  User from-include\n');
    const file = configFile('Host inc other\n  Include fleet.conf\nHost *\n  User outer\n');
    expect(expectSameAsOpenSsh(file, 'inc')).toMatchObject({ port: 4444, user: 'from-include' });
    expect(expectSameAsOpenSsh(file, 'other')).toMatchObject({ port: 22, user: 'from-include' });
    expect(expectSameAsOpenSsh(file, 'elsewhere')).toMatchObject({ user: 'outer' });
  });

  it('uses ssh default files when the config names none', () => {
    const r = ours(configFile('Host x\n  Port 2\n'), 'x');
    expect(r.identityFiles[0]).toBe(join(home, '.ssh/id_rsa'));
    expect(r.identityFilesExplicit).toBe(false);
    expect(r.userKnownHostsFiles).toEqual([join(home, '.ssh/known_hosts'), join(home, '.ssh/known_hosts2')]);
  });

  it('expands tokens and environment variables in IdentityFile, as ssh_config(5) lists them', () => {
    const file = configFile(
      'Host tok\n  HostName real.example\n  User u1\n  Port 2022\n  IdentityFile %d/%r@%h:%p-%n-%%\n  IdentityFile ${KEYS}/k\n',
    );
    const r = resolveHostConfig(
      { host: 'tok' },
      configSources(file, ctx),
      { defaultUser: 'root', defaultPort: 22 },
      { ...ctx, env: { ...ctx.env, KEYS: '/srv/keys' } },
    );
    expect(r.identityFiles).toEqual([`${home}/u1@real.example:2022-tok-%`, '/srv/keys/k']);
  });

  it('reads ~/.ssh/config, then /etc/ssh/ssh_config, when the inventory names no file', () => {
    expect(configSources(undefined, ctx)).toEqual([
      { path: join(home, '.ssh', 'config'), kind: 'user', required: false },
      { path: '/etc/ssh/ssh_config', kind: 'system', required: false },
    ]);
    expect(configSources('none', ctx)).toEqual([]);
  });

  it('parses ProxyJump entries', () => {
    expect(parseJump('alice@j1:2022', 'x')).toEqual({ host: 'j1', user: 'alice', port: 2022 });
    expect(parseJump('ssh://bob@[fd00::1]:2200', 'x')).toEqual({ host: 'fd00::1', user: 'bob', port: 2200 });
    expect(parseJump('j2', 'x')).toEqual({ host: 'j2' });
  });
});

describe('routes through jump hosts', () => {
  const file = configFile(`Host node1
  HostName 10.2.0.1
  ProxyJump hop2
Host node2
  HostName 10.2.0.2
  ProxyJump hop1,hop2
Host hop2
  HostName 10.2.0.254
  ProxyJump hop1
Host hop1
  HostName 127.0.28.1
  User jumper
Host loop
  ProxyJump loop2
Host loop2
  ProxyJump loop
`);
  const target = (host: string) => ({
    node: host,
    host,
    port: 22,
    username: 'root',
    connectTimeoutMs: 1000,
    sshConfig: file,
    defaults: ['port' as const, 'username' as const],
  });

  it("reaches a jump host through its own ProxyJump, and the node with the inventory's defaults", () => {
    const hops = resolveRoute(target('node1'), ctx);
    expect(hops.map((h) => `${h.config.user}@${h.config.hostname}:${h.config.port}`)).toEqual([
      'jumper@127.0.28.1:22',
      `${ctx.localUser}@10.2.0.254:22`,
      'root@10.2.0.1:22',
    ]);
    expect(hops.map((h) => h.label)).toEqual(["node1's jump host hop1", "node1's jump host hop2", 'node1']);
  });

  it('visits a ProxyJump list in order, as ssh -J does', () => {
    const hops = resolveRoute(target('node2'), ctx);
    expect(hops.map((h) => h.config.hostname)).toEqual(['127.0.28.1', '10.2.0.254', '10.2.0.2']);
  });

  it('refuses a ProxyJump loop with a sentence', () => {
    expect(() => resolveRoute(target('loop'), ctx)).toThrow(
      `${file} line 16: ProxyJump loop to reach loop: root@loop:22 → ${ctx.localUser}@loop2:22 → ${ctx.localUser}@loop:22`,
    );
  });
});

describe('refusals', () => {
  function refusal(text: string, host: string): string {
    const file = configFile(text);
    try {
      ours(file, host);
    } catch (err) {
      expect(err).toBeInstanceOf(SshConfigError);
      return (err as Error).message.replace(file, 'FILE');
    }
    throw new Error('expected a refusal');
  }

  it('refuses StrictHostKeyChecking no for the host it applies to, and only that host', () => {
    const text = 'Host lax\n  StrictHostKeyChecking no\nHost *\n  StrictHostKeyChecking yes\n';
    expect(refusal(text, 'lax')).toBe(
      'FILE line 2: StrictHostKeyChecking no applies to lax, but nova-upgrade always checks host keys against known_hosts: remove the setting for this host, or add its key with ssh-keyscan after checking its fingerprint',
    );
    expect(ours(configFile(text), 'strict').hostname).toBe('strict');
  });

  it('refuses ProxyCommand, pointing at ProxyJump', () => {
    expect(refusal('Host p\n  ProxyCommand ssh -W %h:%p bastion\n', 'p')).toBe(
      'FILE line 2: ProxyCommand applies to p; nova-upgrade connects through jump hosts itself: write the bastion as ProxyJump [user@]host[:port] instead',
    );
  });

  it('refuses Match exec when it is reached', () => {
    expect(refusal('Match exec "test -e /x"\n  User e\n', 'any')).toBe(
      'FILE line 1: Match exec is not supported: nova-upgrade does not run commands from an ssh config to decide how to connect',
    );
  });

  it('refuses what ssh refuses: extra arguments, a bad port', () => {
    expect(refusal('Host a\n  HostName one two\n', 'a')).toBe('FILE line 2: hostname takes one argument, found 2');
    expect(refusal('Host a\n  Port http\n', 'a')).toBe('FILE line 2: Port "http" is not a TCP port, 1 to 65535');
  });

  it('refuses a config file the inventory names but the worker cannot read', () => {
    expect(() =>
      resolveHostConfig(
        { host: 'a' },
        configSources(join(root, 'missing'), ctx),
        { defaultUser: 'root', defaultPort: 22 },
        ctx,
      ),
    ).toThrow(`cannot read ssh config ${join(root, 'missing')}: ENOENT`);
  });
});

describe('the inventory names ssh settings, never their contents', () => {
  const base = () => ({
    cloud: 'byo',
    release: { from: '30.0.0', to: '31.0.0' },
    vip: { url: 'http://127.0.28.100:8282' },
    nodes: [
      {
        name: 'ctl',
        address: '10.0.0.1',
        roles: ['controller', 'lb'],
        lb: { socket: { via: 'unix', path: '/run/haproxy.sock' } },
      },
      { name: 'api1', sshHost: 'api-1', roles: ['api'], api: { url: 'http://10.0.0.21:8774' } },
      {
        name: 'api2',
        address: '10.0.0.22',
        sshUser: 'stack',
        sshPort: 2222,
        sshPrivateKeyPath: '~/.ssh/api2',
        roles: ['api'],
      },
    ] as Array<Record<string, unknown>>,
  });

  it('keeps what the inventory says apart from the defaults an ssh config may override', () => {
    const inv = validateInventory({ ...base(), ssh: { config: '~/.ssh/cloud_config', privateKeyPath: '/keys/fleet' } });
    const [ctl, api1, api2] = inv.nodes.map((n) => sshTargetFor(inv, n));
    expect(ctl).toEqual({
      node: 'ctl',
      host: '10.0.0.1',
      port: 22,
      username: 'root',
      privateKeyPath: '/keys/fleet',
      connectTimeoutMs: 10_000,
      sshConfig: '~/.ssh/cloud_config',
      defaults: ['port', 'username'],
    });
    expect(api1).toMatchObject({ host: 'api-1', defaults: ['port', 'username'] });
    expect(api2).toEqual({
      node: 'api2',
      host: '10.0.0.22',
      port: 2222,
      username: 'stack',
      privateKeyPath: '~/.ssh/api2',
      connectTimeoutMs: 10_000,
      sshConfig: '~/.ssh/cloud_config',
    });
    expect(inv.nodes[1]!.api!.url).toBe('http://10.0.0.21:8774');
  });

  it('refuses a node with neither address nor alias, an alias-only API node without api.url, and a relative config path', () => {
    const raw = base();
    raw.nodes.push({ name: 'cmp1', roles: ['compute'] });
    raw.nodes[1] = { name: 'api1', sshHost: 'api-1', roles: ['api'] };
    expect(() => validateInventory({ ...raw, ssh: { config: 'ssh_config' } }, 'inv.yaml')).toThrow(
      'inv.yaml: 1 problem in the inventory:\n  - ssh.config: must be an absolute path, a path starting with ~/, or none',
    );
    expect(() => validateInventory({ ...raw, ssh: {} }, 'inv.yaml')).toThrow(
      [
        'inv.yaml: 2 problems in the inventory:',
        '  - nodes[1] (api1).api.url: the node is named only by its ssh alias "api-1", which the worker cannot call nova-api at; give api.url or address',
        "  - nodes[3] (cmp1).address: give the node's address, or sshHost (a Host alias of the ssh config)",
      ].join('\n'),
    );
  });
});
