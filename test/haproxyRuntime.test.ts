// The runtime API client against a real HAProxy 2.6: transports, answer attribution in `;`
// batches, and every error text it must turn into a clear failure.
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haproxyPid, reloadHaproxy, startHaproxy, stopHaproxy } from '../lab/haproxy';
import {
  batchPayload,
  commands,
  HaproxyRuntime,
  splitAnswers,
  type RuntimeCommand,
} from '../activities/haproxy/runtimeApi';
import { type LbTarget } from '../common/haproxy';
import { parseServersState, serverStats } from '../activities/haproxy/stats';
import { createHaproxyActivities } from '../activities/haproxy/activities';
import type { RemoteRunner } from '../activities/ssh/types';
import { freePort, haproxyLbConfig, startBackends, type Backend } from './helpers/backends';
import { failureOf } from './helpers/failures';

const BACKEND = 'nova-api';
const noRunner: RemoteRunner = {
  run: () => Promise.reject(new Error('no ssh in this test')),
  runDetached: () => Promise.reject(new Error('no ssh in this test')),
};

let dir: string;
let tcpPort: number;
let backends: Backend[];
const lbUnix = (): LbTarget => ({ node: 'lb-unix', socket: { via: 'unix', path: join(dir, 'admin.sock') } });
const lbTcp = (): LbTarget => ({ node: 'lb-tcp', socket: { via: 'tcp', host: '127.0.0.1', port: tcpPort } });
const lbOperator = (): LbTarget => ({ node: 'lb-operator', socket: { via: 'unix', path: join(dir, 'operator.sock') } });

/** Raw exchange, bypassing the client: what HAProxy really writes back. */
function raw(payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(join(dir, 'admin.sock'));
    let out = '';
    sock.on('connect', () => sock.end(payload));
    sock.on('data', (d) => (out += d.toString()));
    sock.on('error', reject);
    sock.on('close', () => resolve(out));
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'haproxy-runtime-'));
  backends = await startBackends(['api1', 'api2', 'api3']);
  tcpPort = await freePort();
  await startHaproxy({
    dir,
    config: haproxyLbConfig({
      name: 'lb1',
      dir,
      frontendPort: await freePort(),
      tcpPort,
      backend: BACKEND,
      servers: backends.map((b) => ({ name: b.name, port: b.port, weight: 37 })),
    }),
  });
  // Until rise checks pass a fresh server reads "UP 1/3" (and "DRAIN 1/3" when drained).
  const deadline = Date.now() + 5000;
  while ([...serverStats(await raw(`show stat ${BACKEND} 4 -1\n`), BACKEND).values()].some((s) => s.status !== 'UP')) {
    if (Date.now() > deadline) throw new Error('backends did not come UP');
    await new Promise((r) => setTimeout(r, 50));
  }
});

afterAll(async () => {
  await stopHaproxy(dir);
  await Promise.all(backends.map((b) => b.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe('transports', () => {
  it.each([
    ['unix', lbUnix],
    ['tcp', lbTcp],
  ])('%s socket reads state and drains', async (_via, lb) => {
    const client = new HaproxyRuntime(lb());
    const { answers, level } = await client.execute([commands.showServersState(BACKEND), commands.showStat(BACKEND)]);
    expect(level).toBe('admin');
    expect(parseServersState(answers[0]!.text).map((s) => [s.server, s.uweight])).toEqual([
      ['api1', 37],
      ['api2', 37],
      ['api3', 37],
    ]);
    expect(serverStats(answers[1]!.text, BACKEND).get('api2')?.weight).toBe(37);

    await client.one(commands.setState(BACKEND, 'api2', 'drain'));
    const drained = parseServersState(await client.one(commands.showServersState(BACKEND))).find(
      (s) => s.server === 'api2',
    )!;
    expect(drained.forcedDrain).toBe(true);
    expect(serverStats(await client.one(commands.showStat(BACKEND)), BACKEND).get('api2')).toMatchObject({
      status: 'DRAIN',
      weight: 37,
    });
    await client.one(commands.setState(BACKEND, 'api2', 'ready'));
  });

  it('an unreachable socket is a retryable failure naming the LB and the socket', async () => {
    const missing = await failureOf(
      new HaproxyRuntime({ node: 'lb9', socket: { via: 'unix', path: join(dir, 'nope.sock') } }).one(
        commands.showStat(BACKEND),
      ),
    );
    expect(missing.type).toBe('HaproxyUnreachable');
    expect(missing.nonRetryable).toBe(false);
    expect(missing.message).toContain('lb9');
    expect(missing.message).toContain('nope.sock');
    expect(missing.message).toContain('ENOENT');

    const closed = await failureOf(
      new HaproxyRuntime({ node: 'lb8', socket: { via: 'tcp', host: '127.0.0.1', port: await freePort() } }).one(
        commands.showStat(BACKEND),
      ),
    );
    expect(closed.type).toBe('HaproxyUnreachable');
    expect(closed.nonRetryable).toBe(false);
    expect(closed.message).toMatch(/lb8 .*tcp socket 127\.0\.0\.1:\d+.*ECONNREFUSED/);
  });
});

describe('batches', () => {
  it('weight format errors end without a blank line, so splitting a batch on blank lines misattributes answers', async () => {
    const out = await raw(
      `set server ${BACKEND}/api1 weight x;set server ${BACKEND}/api2 weight 0;set server ${BACKEND}/api2 weight 37\n`,
    );
    expect(out).toBe('Empty weight string empty or preceded by garbage\n\n\n');
    // Naively the first answer is the error glued to the second's empty answer; the third has none.
    expect(out.split('\n\n').filter(Boolean)).toHaveLength(2);

    const glued = await raw(`set server ${BACKEND}/api1 weight 5x;show servers state ${BACKEND}\n`);
    const naive = glued.split('\n\n');
    expect(naive[0]).toMatch(/^Trailing garbage in weight string\n1\n# be_id/);
    expect(naive[1]).toBe('');
  });

  it('the `show cli level` marker after each command attributes every answer to its command', async () => {
    const cmds: RuntimeCommand[] = [
      { text: `set server ${BACKEND}/api1 weight 5x`, backend: BACKEND, server: 'api1' },
      commands.showServersState(BACKEND),
      { text: `set server ${BACKEND}/api1 weight x`, backend: BACKEND, server: 'api1' },
      commands.setWeight(BACKEND, 'api1', 37),
    ];
    const out = await raw(batchPayload(cmds));
    const { texts, level } = splitAnswers(out, cmds.length);
    expect(level).toBe('admin');
    expect(texts[0]).toBe('Trailing garbage in weight string');
    expect(texts[1]).toMatch(/^1\n# be_id/);
    expect(texts[2]).toBe('Empty weight string empty or preceded by garbage');
    expect(texts[3]).toBe('');

    const f = await failureOf(new HaproxyRuntime(lbUnix()).execute(cmds));
    expect(f.type).toBe('HaproxyBadWeight');
    expect(f.message).toContain('Trailing garbage in weight string');
    expect(f.message).toContain(`server ${BACKEND}/api1`);
  });
});

describe('error texts', () => {
  const cases: Array<[string, () => LbTarget, RuntimeCommand, string, RegExp]> = [
    [
      'No such server.',
      lbUnix,
      commands.setState(BACKEND, 'api9', 'drain'),
      'HaproxyNoSuchServer',
      /lb-unix.*server nova-api\/api9.*No such server\..*backend nova-api has no server api9/,
    ],
    [
      'No such backend.',
      lbTcp,
      commands.setState('nova-apx', 'api1', 'drain'),
      'HaproxyNoSuchBackend',
      /lb-tcp.*server nova-apx\/api1.*No such backend\..*there is no backend nova-apx/,
    ],
    [
      "Can't find backend.",
      lbUnix,
      commands.showServersState('nova-apx'),
      'HaproxyNoSuchBackend',
      /lb-unix.*backend nova-apx.*Can't find backend\./,
    ],
    [
      'No such proxy.',
      lbUnix,
      commands.showStat('nova-apx'),
      'HaproxyNoSuchBackend',
      /lb-unix.*backend nova-apx.*No such proxy\./,
    ],
    [
      'Permission denied',
      lbOperator,
      commands.setState(BACKEND, 'api1', 'drain'),
      'HaproxyPermissionDenied',
      /lb-operator.*operator\.sock.*server nova-api\/api1.*Permission denied.*level operator.*level admin/,
    ],
    [
      "Require 'backend/server'.",
      lbUnix,
      { text: 'set server api1 state drain', backend: BACKEND, server: 'api1' },
      'HaproxyBadServerSpec',
      /lb-unix.*Require 'backend\/server'\./,
    ],
    [
      'weight range',
      lbUnix,
      { text: `set server ${BACKEND}/api1 weight 300`, backend: BACKEND, server: 'api1' },
      'HaproxyBadWeight',
      /lb-unix.*server nova-api\/api1.*Absolute weight can only be between 0 and 256 inclusive\./,
    ],
    [
      'empty weight',
      lbUnix,
      { text: `set server ${BACKEND}/api1 weight x`, backend: BACKEND, server: 'api1' },
      'HaproxyBadWeight',
      /Empty weight string empty or preceded by garbage/,
    ],
    [
      'trailing garbage',
      lbUnix,
      { text: `set server ${BACKEND}/api1 weight 5x`, backend: BACKEND, server: 'api1' },
      'HaproxyBadWeight',
      /Trailing garbage in weight string/,
    ],
    [
      'Unknown command',
      lbUnix,
      { text: 'drain server nova-api/api1' },
      'HaproxyUnknownCommand',
      /lb-unix.*Unknown command/,
    ],
  ];
  it.each(cases)('%s', async (_name, lb, cmd, type, message) => {
    const f = await failureOf(new HaproxyRuntime(lb()).execute([cmd]));
    expect(f.type).toBe(type);
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(message);
  });

  it('a weight outside 0..256 is refused before anything is sent', () => {
    expect(() => commands.setWeight(BACKEND, 'api1', 300)).toThrow(/not an integer 0\.\.256; nothing was sent/);
  });
});

describe('names that could smuggle a second command', () => {
  let spy: Server;
  let spyPort: number;
  let connections = 0;
  beforeAll(async () => {
    spy = createServer((s) => {
      connections++;
      s.destroy();
    });
    spyPort = await freePort();
    await new Promise<void>((r) => spy.listen(spyPort, '127.0.0.1', r));
  });
  afterAll(() => new Promise<void>((r) => spy.close(() => r())));

  it.each([
    ['server with ;', 'nova-api', 'api1;set server nova-api/api2 state maint'],
    ['server with a newline', 'nova-api', 'api1\nset server nova-api/api2 state maint'],
    ['backend with ;', 'nova-api;show env', 'api1'],
  ])('%s is refused and nothing reaches the socket', async (_name, backend, server) => {
    const sent: string[] = [];
    const acts = createHaproxyActivities({ runner: noRunner, onSend: (_lb, p) => sent.push(p) });
    const lbs: LbTarget[] = [{ node: 'lb-spy', socket: { via: 'tcp', host: '127.0.0.1', port: spyPort } }, lbUnix()];
    for (const call of [
      () => acts.drainApiServer({ lbs, backend, server, mode: 'disable' }),
      () => acts.recordServerWeights({ lbs, backend, servers: [server] }),
      () =>
        acts.enableApiServer({
          lbs,
          backend,
          server,
          weights: { 'lb-spy': { [server]: 1 }, 'lb-unix': { [server]: 1 } },
        }),
      () => acts.shutdownSessions({ lbs, backend, server }),
      () => acts.switchOverApiServers({ lbs, backend, enable: 'api3', drain: [server], mode: 'drain', weights: {} }),
    ]) {
      const f = await failureOf(call());
      expect(f.type).toBe('HaproxyInvalidName');
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toContain('nothing was sent');
    }
    expect(sent).toEqual([]);
    expect(connections).toBe(0);
    const states = parseServersState(await raw(`show servers state ${BACKEND}\n`));
    expect(states.every((s) => s.adminState === 0)).toBe(true);
  });
});

describe('lab/haproxy.ts', () => {
  it('reloads gracefully: same master, the socket answers, and runtime state is reset to the config', async () => {
    const pid = haproxyPid(dir);
    const client = new HaproxyRuntime(lbUnix());
    await client.one(commands.setState(BACKEND, 'api3', 'maint'));
    await reloadHaproxy(dir);
    expect(haproxyPid(dir)).toBe(pid);
    const api3 = parseServersState(await client.one(commands.showServersState(BACKEND))).find(
      (s) => s.server === 'api3',
    )!;
    expect(api3.forcedMaint).toBe(false);
  });
});
