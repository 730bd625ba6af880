// The seed's transport: `socat stdio` run over SSH on the LB node, commands on stdin, through
// the worker's real SshPool and a real sshd on 127.0.0.1.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { startHaproxy, stopHaproxy } from '../lab/haproxy';
import { ensureKeyPair, startSshd, stopSshd } from '../lab/sshd';
import { createHaproxyActivities } from '../activities/haproxy/activities';
import { type LbTarget } from '../common/haproxy';
import { SshPool } from '../activities/ssh/pool';
import type { SshTarget } from '../common/sshTarget';
import { freePort, haproxyLbConfig, startBackends, type Backend } from './helpers/backends';
import { failureOf } from './helpers/failures';

const BACKEND = 'nova-api';
const root = mkdtempSync(join(tmpdir(), 'haproxy-ssh-'));
const hpDir = join(root, 'haproxy');
const sudoLog = join(root, 'sudo.log');
const pool = new SshPool();
const acts = createHaproxyActivities({ runner: pool });
let backends: Backend[];
let ssh: SshTarget;

const lb = (over: { path?: string; sudo?: boolean; ssh?: Partial<SshTarget> } = {}): LbTarget => ({
  node: 'lb1',
  socket: { via: 'ssh', path: over.path ?? join(hpDir, 'admin.sock'), sudo: over.sudo ?? false },
  ssh: { ...ssh, ...over.ssh },
});

function run<I, O>(fn: (input: I) => Promise<O>, input: I): Promise<O> {
  return new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') }).run(fn, input);
}

beforeAll(async () => {
  backends = await startBackends(['api1', 'api2']);
  await startHaproxy({
    dir: hpDir,
    config: haproxyLbConfig({
      name: 'lb1',
      dir: hpDir,
      frontendPort: await freePort(),
      tcpPort: await freePort(),
      backend: BACKEND,
      servers: backends.map((b) => ({ name: b.name, port: b.port, weight: 37 })),
    }),
  });
  // Debian images here have no sudo; a stand-in on the session's PATH shows the prefix is used.
  const bin = join(root, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'sudo'), `#!/bin/sh\necho "$*" >> ${sudoLog}\n[ "$1" = "-n" ] && shift\nexec "$@"\n`);
  chmodSync(join(bin, 'sudo'), 0o755);
  const key = ensureKeyPair(join(root, 'client', 'id_ed25519'));
  const port = await freePort();
  const sshd = await startSshd({
    name: 'lb1',
    dir: join(root, 'sshd'),
    address: '127.0.0.1',
    port,
    authorizedKeys: key.publicKey,
    env: { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin` },
  });
  const knownHostsPath = join(root, 'known_hosts');
  writeFileSync(knownHostsPath, `${sshd.knownHostsLine}\n`);
  ssh = {
    node: 'lb1',
    host: '127.0.0.1',
    port,
    username: 'root',
    privateKeyPath: key.privateKeyPath,
    knownHostsPath,
    connectTimeoutMs: 5000,
  };
  await new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') }).run(acts.waitForServerUp, {
    lbs: [lb()],
    backend: BACKEND,
    server: 'api1',
    timeoutMs: 5000,
    pollMs: 100,
    stableMs: 0,
  });
});

afterAll(async () => {
  await pool.close();
  stopSshd(join(root, 'sshd'));
  await stopHaproxy(hpDir);
  await Promise.all(backends.map((b) => b.close()));
  rmSync(root, { recursive: true, force: true });
});

describe('runtime API over ssh + socat', () => {
  it('reads state, drains and enables', async () => {
    const lbs = [lb()];
    expect((await run(acts.checkLoadBalancers, { lbs, backend: BACKEND, servers: ['api1', 'api2'] })).levels).toEqual({
      lb1: 'admin',
    });
    const { weights } = await run(acts.recordServerWeights, { lbs, backend: BACKEND, servers: ['api1'] });
    expect(weights).toEqual({ lb1: { api1: 37 } });
    expect((await run(acts.drainApiServer, { lbs, backend: BACKEND, server: 'api1', mode: 'drain' })).alreadyDone).toBe(
      false,
    );
    const counters = await run(acts.readBackendCounters, { lbs, backend: BACKEND });
    expect(counters.counters.lb1!.api1).toMatchObject({ status: 'DRAIN', weight: 37 });
    expect((await run(acts.drainApiServer, { lbs, backend: BACKEND, server: 'api1', mode: 'drain' })).alreadyDone).toBe(
      true,
    );
    await run(acts.waitForNoSessions, {
      lbs,
      backend: BACKEND,
      server: 'api1',
      settleMs: 100,
      timeoutMs: 5000,
      pollMs: 50,
    });
    expect((await run(acts.enableApiServer, { lbs, backend: BACKEND, server: 'api1', weights })).alreadyDone).toBe(
      false,
    );
    await run(acts.waitForServerUp, {
      lbs,
      backend: BACKEND,
      server: 'api1',
      timeoutMs: 5000,
      pollMs: 100,
      stableMs: 0,
    });
  });

  it('runs socat under sudo -n when the inventory says so', async () => {
    const out = await run(acts.readBackendCounters, { lbs: [lb({ sudo: true })], backend: BACKEND });
    expect(Object.keys(out.counters.lb1!)).toEqual(['api1', 'api2']);
    expect(readFileSync(sudoLog, 'utf8')).toContain(`-n socat -t 10 stdio unix-connect:${join(hpDir, 'admin.sock')}`);
  });

  it('recognises HAProxy errors in the output although socat exits 0', async () => {
    const f = await failureOf(
      run(acts.drainApiServer, { lbs: [lb()], backend: BACKEND, server: 'api9', mode: 'drain' }),
    );
    expect(f.type).toBe('HaproxyNoSuchServer');
    expect(f.message).toMatch(/LB lb1 .*has no server api9 in backend nova-api/);
    const denied = await failureOf(
      run(acts.drainApiServer, {
        lbs: [lb({ path: join(hpDir, 'operator.sock') })],
        backend: BACKEND,
        server: 'api2',
        mode: 'drain',
      }),
    );
    expect(denied.type).toBe('HaproxyPermissionDenied');
    expect(denied.message).toContain('socket grants level operator');
  });

  it('a missing socket or an unreachable node is a retryable failure naming the LB and the socket', async () => {
    const missing = await failureOf(
      run(acts.readBackendCounters, { lbs: [lb({ path: '/run/no-such-haproxy.sock' })], backend: BACKEND }),
    );
    expect(missing.type).toBe('HaproxyUnreachable');
    expect(missing.nonRetryable).toBe(false);
    expect(missing.message).toMatch(
      /LB lb1 \(socket \/run\/no-such-haproxy\.sock \(socat over ssh\)\).*No such file or directory/,
    );

    const down = await failureOf(
      run(acts.readBackendCounters, {
        lbs: [lb({ ssh: { port: await freePort(), connectTimeoutMs: 1000 } })],
        backend: BACKEND,
      }),
    );
    expect(down.nonRetryable).toBe(false);
    expect(down.message).toContain('lb1');
  });
});
