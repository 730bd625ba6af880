// What an operator sees for bad input: one sentence, a non-zero exit, and nothing started.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { parse, stringify } from 'yaml';
import { validateInventory } from '../inventory/load';
import type { UpgradeInput } from '../common/messages';
import { sharedTemporal } from './temporalEnv';
import { runCli, type CliRun } from './helpers/cli';
import { novaUpgrade } from '../workflows/upgrade';

const dir = mkdtempSync(join(tmpdir(), 'cli-'));
let address: string;
let client: Client;

function cli(...args: string[]): Promise<CliRun> {
  return runCli(args, { TEMPORAL_ADDRESS: address });
}

// Raw YAML, edited freely to build bad inputs: its shape is what the schema under test checks.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function seedWith(change: (raw: Record<string, any>) => void): string {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const raw = parse(readFileSync('examples/seed-two-node.yaml', 'utf8')) as Record<string, any>;
  change(raw);
  const path = join(dir, `${randomUUID()}.yaml`);
  writeFileSync(path, stringify(raw));
  return path;
}

async function startOnQueue(taskQueue: string) {
  const raw = parse(readFileSync('examples/seed-two-node.yaml', 'utf8')) as Record<string, unknown>;
  const inventory = validateInventory({ ...raw, cloud: `cli${randomUUID().slice(0, 8)}` });
  const input: UpgradeInput = { inventory, autoApprove: [], startedBy: 'test' };
  return client.workflow.start(novaUpgrade, {
    taskQueue,
    workflowId: `nova-upgrade-${inventory.cloud}`,
    args: [input],
  });
}

beforeAll(async () => {
  address = sharedTemporal().address;
  client = new Client({ connection: await Connection.connect({ address }), namespace: sharedTemporal().namespace });
});

afterAll(async () => {
  await client?.connection.close();
});

describe('the CLI on bad input', () => {
  it('refuses a bad inventory by field and node, exit 2, and starts nothing', async () => {
    const path = seedWith((raw) => {
      raw.nodes[1].address = '';
      raw.commands = { serviceHup: 'kill -HUP {pid}' };
    });
    const r = await cli('start', '-i', path);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('nodes[1] (apicomp).address: ');
    expect(r.stderr).toContain('commands.serviceHup: unknown placeholder {pid}; this template may use {unit}, {node}');
    expect(r.stderr).toContain('Nothing was started and no host was contacted.');
    expect(r.stdout).toBe('');
  });

  it('prints every command host by host with --dry-run, without a server', async () => {
    const r = await cli('start', '-i', 'examples/seed-two-node.yaml', '--dry-run', '--address', '127.0.0.1:1');
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith('nova N+1: 30.0.0 (2024.2 Dalmatian) → 31.0.0 (2025.1 Epoxy)\n')).toBe(true);
    expect(r.stdout).toContain(
      '- log in to every node; password-less sudo on controller, apicomp\n    [controller] id -un\n',
    );
    expect(r.stdout).toContain(
      "[controller] echo 'set server nova-api/controller weight 0' | sudo socat /var/run/haproxy.sock stdio",
    );
    // The default monotonic switch-over: apicomp is drained in the exchange that enables controller.
    expect(r.stdout).toContain('- enable controller and drain apicomp in one exchange');
    expect(r.stdout).toContain('[apicomp] sudo systemctl restart devstack@n-api');
    expect(r.stdout).toContain(
      '[controller] /opt/stack/data/venv/bin/nova-manage --config-file /etc/nova/nova_cell1.conf db sync',
    );
    expect(r.stdout.trim().endsWith('Dry run: nothing was started and no host was contacted.')).toBe(true);
  });

  it('says in a sentence that the Temporal server is unreachable', async () => {
    const r = await cli('status', 'nova-upgrade-x', '--address', '127.0.0.1:1');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^nova-upgrade: cannot reach the Temporal server at 127\.0\.0\.1:1 \(.*\); start one with "nova-upgrade server start" or pass --address\n$/,
    );
  });

  it('refuses an unknown phase before contacting anything', async () => {
    const r = await cli('approve', 'nova-upgrade-x', '--phase', 'lunch');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'unknown phase "lunch"; phases are before-upgrade, before-window, during-window, after-window',
    );
  });

  it('says no worker is polling instead of waiting for ever', async () => {
    const queue = `nobody-${randomUUID()}`;
    const h = await startOnQueue(queue);
    const r = await cli('approve', h.workflowId, '--task-queue', queue);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      `nova-upgrade: no worker is polling task queue "${queue}"; start one with "nova-upgrade worker"`,
    );
    await h.terminate('test done');
  });

  it('refuses a decision for a finished upgrade', async () => {
    const h = await startOnQueue(`nobody-${randomUUID()}`);
    await h.terminate('test done');
    for (const args of [
      ['approve', h.workflowId],
      ['retry', h.workflowId],
      ['abort', h.workflowId],
    ]) {
      const r = await cli(...args);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(
        `nova-upgrade: upgrade ${h.workflowId} is terminated; it takes no more approvals or decisions`,
      );
    }
  });
});

describe('worker versioning options', () => {
  it('refuses a build id or make-current without a deployment, and a deployment name with a space, before connecting', async () => {
    for (const [args, sentence] of [
      [
        ['worker', '--build-id', 'b1'],
        'worker: --build-id names a build of a Worker Deployment; give --deployment too',
      ],
      [['worker', '--make-current'], 'worker: --make-current needs --deployment'],
      [['worker', '--deployment', 'nova upgrade'], 'worker: --deployment "nova upgrade" must be letters, digits'],
      [
        ['worker', '--max-handshakes', 'many'],
        'worker: --max-handshakes must be a whole number from 1 to 256, not "many"',
      ],
      [['worker', '--max-handshakes', '0'], 'worker: --max-handshakes must be a whole number from 1 to 256, not "0"'],
    ] as const) {
      // An address nothing listens on: a refusal must come before any connection is tried.
      const r = await runCli([...args], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(sentence);
      expect(r.stderr).toContain('nothing was started');
    }
  });
});
