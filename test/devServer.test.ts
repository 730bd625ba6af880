// The dev server manager against real Temporal servers: each case that restarts a server gets
// its own state dir and ports, so the run's shared server is never disturbed.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import {
  devServerStatus,
  findFreePort,
  frontendAnswers,
  startDevServer,
  stopDevServer,
  temporalCliPath,
  type StartDevServerOptions,
} from '../client/devServer';
import { SEARCH_ATTRIBUTES } from '../common/searchAttributes';
import { sharedTemporal } from './temporalEnv';

const scratch = mkdtempSync(join(tmpdir(), 'nova-upgrade-devserver-'));
const stateDirs: string[] = [];

afterAll(async () => {
  for (const dir of stateDirs) await stopDevServer(dir);
  rmSync(scratch, { recursive: true, force: true });
});

async function freshOptions(name: string): Promise<StartDevServerOptions> {
  const stateDir = join(scratch, name);
  stateDirs.push(stateDir);
  return { stateDir, port: await findFreePort(), headless: true };
}

function customAttributes(address: string, namespace: string): Record<string, string> {
  const out = execFileSync(temporalCliPath(), [
    'operator',
    'search-attribute',
    'list',
    '--address',
    address,
    '--namespace',
    namespace,
    '-o',
    'json',
    '--disable-config-file',
    '--disable-config-env',
  ]);
  return (JSON.parse(out.toString('utf8')) as { customAttributes?: Record<string, string> }).customAttributes ?? {};
}

async function withClient<T>(address: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address });
  try {
    return await fn(new Client({ connection, namespace: 'default' }));
  } finally {
    await connection.close();
  }
}

describe('the shared test server from globalSetup', () => {
  it('answers and carries the project search attributes', async () => {
    const { address, namespace } = sharedTemporal();
    expect(address).not.toBe('127.0.0.1:7233');
    expect(await frontendAnswers(address, namespace)).toBe(true);
    const attrs = customAttributes(address, namespace);
    for (const a of SEARCH_ATTRIBUTES) expect(attrs[a.name]).toBe('INDEXED_VALUE_TYPE_KEYWORD');
  });
});

describe('startDevServer / stopDevServer on one state dir', () => {
  let opts: StartDevServerOptions;
  const workflowId = `devserver-persist-${randomUUID()}`;

  it('starts a server whose namespace answers', async () => {
    opts = await freshOptions('lifecycle');
    const info = await startDevServer(opts);
    expect(info.alreadyRunning).toBe(false);
    expect(info.address).toBe(`127.0.0.1:${opts.port}`);
    expect(await frontendAnswers(info.address, 'default')).toBe(true);
    const status = await devServerStatus(opts.stateDir);
    expect(status).toMatchObject({ running: true, answering: true, pid: info.pid, address: info.address });
  });

  it('finds the running server on a second start instead of failing', async () => {
    const first = await devServerStatus(opts.stateDir);
    const again = await startDevServer(opts);
    expect(again.alreadyRunning).toBe(true);
    expect(again.pid).toBe(first.pid);
  });

  it('refuses a port held by something that is not our server, in a sentence', async () => {
    const port = await findFreePort();
    // Reads (and drops) what our probe sends, so the probe's hang-up is noticed and close() returns.
    const squatter: Server = createServer((socket) => socket.resume());
    await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
    try {
      await expect(startDevServer({ stateDir: join(scratch, 'squatted'), port, headless: true })).rejects.toThrow(
        /taken by another process that is not our Temporal dev server/,
      );
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  it('keeps workflow executions across stop and start on the same SQLite file', async () => {
    const address = `127.0.0.1:${opts.port}`;
    // No worker polls this queue: the execution just sits there, which is all we need to find.
    await withClient(address, (c) =>
      c.workflow.start('noSuchWorkflow', { workflowId, taskQueue: `nobody-${randomUUID()}`, args: [] }),
    );
    const stopped = await stopDevServer(opts.stateDir);
    expect(stopped).toMatchObject({ wasRunning: true, killed: false });
    expect(await frontendAnswers(address, 'default', 1_000)).toBe(false);
    expect((await devServerStatus(opts.stateDir)).running).toBe(false);

    const restarted = await startDevServer(opts);
    expect(restarted.alreadyRunning).toBe(false);
    const described = await withClient(address, (c) => c.workflow.getHandle(workflowId).describe());
    expect(described.workflowId).toBe(workflowId);
    expect(described.status.name).toBe('RUNNING');
  });

  it('says so when stopping a server that is not running', async () => {
    await stopDevServer(opts.stateDir);
    expect(await stopDevServer(opts.stateDir)).toEqual({ wasRunning: false, killed: false });
  });
});

describe('search attributes on a reused SQLite file', () => {
  it('creates an attribute that start-dev skipped because the namespace already existed', async () => {
    const opts = await freshOptions('attributes');
    const missing = SEARCH_ATTRIBUTES[SEARCH_ATTRIBUTES.length - 1]!;
    const first = await startDevServer({
      ...opts,
      searchAttributes: SEARCH_ATTRIBUTES.filter((a) => a.name !== missing.name),
    });
    // The precondition: without our help the attribute really is absent.
    expect(customAttributes(first.address, 'default')[missing.name]).toBeUndefined();
    await stopDevServer(opts.stateDir);

    const second = await startDevServer(opts);
    const attrs = customAttributes(second.address, 'default');
    for (const a of SEARCH_ATTRIBUTES) expect(attrs[a.name], a.name).toBe('INDEXED_VALUE_TYPE_KEYWORD');
  });
});
