// Compute service and keystone endpoint activities over a real sshd, against the openstack
// CLI double: each run twice, the second must change nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_COMMANDS, renderCommand } from '../inventory/commands';
import { createComputeActivities } from '../activities/nova/computes';
import { createKeystoneActivities } from '../activities/nova/keystone';
import { startFakeNovaNode, type FakeNovaNode } from './helpers/novaNode';
import { activityEnv, failureOf } from './helpers/activityEnv';

let node: FakeNovaNode;
let acts: ReturnType<typeof createComputeActivities>;
const osCloud = 'devstack-admin';
const listCommand = renderCommand('serviceList', DEFAULT_COMMANDS.serviceList, { osCloud });
const reason = 'nova-upgrade wf1';
const naiveUtc = (ms: number) =>
  new Date(ms)
    .toISOString()
    .replace('Z', '000')
    .replace(/\.(\d{3})000$/, '.$1000');

function service(id: number, binary: string, host: string, status: string, state: string, updatedAt: string | null) {
  return {
    ID: id,
    Binary: binary,
    Host: host,
    Zone: binary === 'nova-compute' ? 'nova' : 'internal',
    Status: status,
    State: state,
    'Updated At': updatedAt,
  };
}

beforeAll(async () => {
  node = await startFakeNovaNode('controller');
  acts = createComputeActivities({ runner: node.runner });
});
afterAll(() => node?.stop());

function seedServices(): void {
  const now = naiveUtc(Date.now());
  node.write(
    'services.json',
    JSON.stringify([
      service(1, 'nova-conductor', 'controller', 'enabled', 'up', now),
      service(2, 'nova-scheduler', 'controller', 'enabled', 'up', now),
      service(3, 'nova-compute', 'apicomp', 'enabled', 'up', now),
      service(4, 'nova-compute', 'compute2', 'enabled', 'up', now),
      service(5, 'nova-compute', 'old-compute', 'enabled', 'down', '2024-01-02T03:04:05.000000'),
      service(6, 'nova-conductor', 'compute2', 'enabled', 'down', '2024-01-02T03:04:05.000000'),
    ]),
  );
}

const commandsFor = (name: 'computeServiceDisable' | 'computeServiceEnable', hosts: string[]) =>
  Object.fromEntries(
    hosts.map((host) => [host, renderCommand(name, DEFAULT_COMMANDS[name], { osCloud, host, reason })]),
  );

describe('disableComputeServices and enableComputeServices', () => {
  it('disable once, enable once; second runs change nothing', async () => {
    seedServices();
    const hosts = ['apicomp', 'compute2'];
    const disable = {
      target: node.target,
      listCommand,
      hosts,
      disableCommands: commandsFor('computeServiceDisable', hosts),
      reason,
    };
    const d1 = await activityEnv().run(acts.disableComputeServices, disable);
    expect(d1).toMatchObject({
      alreadyDone: false,
      changed: hosts,
      unchanged: [],
      summary: 'disabled nova-compute on apicomp, compute2',
    });
    const d2 = await activityEnv().run(acts.disableComputeServices, disable);
    expect(d2).toMatchObject({
      alreadyDone: true,
      changed: [],
      unchanged: hosts,
      summary: 'nova-compute already disabled on apicomp, compute2',
    });
    // The hosts' commands run at once (HOST_COMMANDS_AT_ONCE): their order on the node is any.
    expect(node.read('openstack.log').split('\n').filter(Boolean).sort()).toEqual([
      `compute service set --disable --disable-reason ${reason} apicomp nova-compute`,
      `compute service set --disable --disable-reason ${reason} compute2 nova-compute`,
    ]);

    const enable = {
      target: node.target,
      listCommand,
      hosts,
      enableCommands: commandsFor('computeServiceEnable', hosts),
    };
    expect(await activityEnv().run(acts.enableComputeServices, enable)).toMatchObject({
      alreadyDone: false,
      changed: hosts,
    });
    expect(await activityEnv().run(acts.enableComputeServices, enable)).toMatchObject({
      alreadyDone: true,
      changed: [],
    });
    expect(node.count('openstack.log')).toBe(4);
  });

  it('leaves a compute that an operator disabled before the upgrade disabled, and says so', async () => {
    const now = naiveUtc(Date.now());
    node.write(
      'services.json',
      JSON.stringify([
        { ...service(3, 'nova-compute', 'apicomp', 'disabled', 'up', now), 'Disabled Reason': 'DIMM replacement' },
        service(4, 'nova-compute', 'compute2', 'enabled', 'up', now),
        { ...service(7, 'nova-compute', 'compute3', 'disabled', 'up', now), 'Disabled Reason': null },
      ]),
    );
    const hosts = ['apicomp', 'compute2', 'compute3'];
    const ours = 'nova-upgrade to 31.0.0 (batch 1/1)';
    const disableCommands = Object.fromEntries(
      hosts.map((host) => [
        host,
        renderCommand('computeServiceDisable', DEFAULT_COMMANDS.computeServiceDisable, { osCloud, host, reason: ours }),
      ]),
    );
    const d = await activityEnv().run(acts.disableComputeServices, {
      target: node.target,
      listCommand,
      hosts,
      disableCommands,
      reason: ours,
    });
    expect(d).toMatchObject({
      changed: ['compute2'],
      unchanged: ['apicomp', 'compute3'],
      disabledByOthers: ['apicomp'],
    });

    const enable = {
      target: node.target,
      listCommand,
      hosts,
      enableCommands: commandsFor('computeServiceEnable', hosts),
      ourReason: 'nova-upgrade to 31.0.0',
    };
    const e = await activityEnv().run(acts.enableComputeServices, enable);
    expect(e.changed).toEqual(['compute2']);
    expect(e.leftDisabled).toEqual([
      { host: 'apicomp', reason: 'DIMM replacement' },
      { host: 'compute3', reason: null },
    ]);
    expect(e.summary).toBe(
      'enabled nova-compute on compute2; left apicomp disabled as an operator set it ("DIMM replacement"), compute3 disabled as an operator set it (no reason given)',
    );
    const after = JSON.parse(node.read('services.json')) as Array<{ Host: string; Status: string }>;
    expect(after.filter((r) => r.Status === 'disabled').map((r) => r.Host)).toEqual(['apicomp', 'compute3']);

    // Without --long the reason is not there to read: refused, nothing enabled.
    await activityEnv().run(acts.disableComputeServices, {
      target: node.target,
      listCommand,
      hosts: ['compute2'],
      disableCommands,
      reason: ours,
    });
    const short = renderCommand('serviceList', 'OS_CLOUD={osCloud} openstack compute service list -f json', {
      osCloud,
    });
    const refused = await failureOf(activityEnv().run(acts.enableComputeServices, { ...enable, listCommand: short }));
    expect(refused.type).toBe('NovaServiceListWithoutReason');
    expect(refused.message).toBe(
      'the service list on controller has no "Disabled Reason" column, so an operator\'s own disable of apicomp cannot be told from this upgrade\'s; add --long to commands.serviceList',
    );
    expect(
      (JSON.parse(node.read('services.json')) as Array<{ Host: string; Status: string }>).find(
        (r) => r.Host === 'compute2',
      )?.Status,
    ).toBe('disabled');
  });

  it('refuses a host nova does not know', async () => {
    seedServices();
    const err = await failureOf(
      activityEnv().run(acts.disableComputeServices, {
        target: node.target,
        listCommand,
        hosts: ['nosuch'],
        disableCommands: commandsFor('computeServiceDisable', ['nosuch']),
      }),
    );
    expect(err.type).toBe('NovaComputeServiceNotFound');
    expect(err.message).toContain('nova knows 0 nova-compute services on host "nosuch"');
  });
});

describe('a fleet-sized service list', () => {
  it('reads a list longer than the pool’s 64 KiB output tail whole', async () => {
    // 600 computes: about 100 KiB of JSON, which the pool's default tail would cut mid-record
    // ("did not print JSON", as it did at 500 computes on the scale lab).
    const now = naiveUtc(Date.now());
    const fleet = Array.from({ length: 600 }, (_, i) =>
      service(10 + i, 'nova-compute', `vc${i + 1}`, 'enabled', 'up', now),
    );
    node.write(
      'services.json',
      JSON.stringify([service(1, 'nova-conductor', 'controller', 'enabled', 'up', now), ...fleet]),
    );
    node.write('openstack.log', '');
    const hosts = ['vc1', 'vc600'];
    const r = await activityEnv().run(acts.disableComputeServices, {
      target: node.target,
      listCommand,
      hosts,
      reason,
      disableCommands: commandsFor('computeServiceDisable', hosts),
    });
    expect(r).toMatchObject({ changed: hosts });
    expect(node.count('openstack.log')).toBe(2);
  });
});

describe('waitForNoTasksInProgress', () => {
  it('waits while a server has a task state', async () => {
    node.write(
      'servers-apicomp.json',
      JSON.stringify([
        { ID: 'vm-1', 'Task State': null },
        { ID: 'vm-2', 'Task State': 'resize_migrating' },
      ]),
    );
    node.write('servers-compute2.json', JSON.stringify([]));
    const commandsPerHost = Object.fromEntries(
      ['apicomp', 'compute2'].map((host) => [
        host,
        renderCommand('serverTasksOnHost', DEFAULT_COMMANDS.serverTasksOnHost, { osCloud, host }),
      ]),
    );
    const timedOut = await failureOf(
      activityEnv().run(acts.waitForNoTasksInProgress, {
        target: node.target,
        commandsPerHost,
        timeoutMs: 300,
        pollMs: 100,
      }),
    );
    expect(timedOut.nonRetryable).toBeUndefined();
    expect(timedOut.message).toContain('vm-2 (resize_migrating) on apicomp');

    const env = activityEnv();
    const running = env.run(acts.waitForNoTasksInProgress, {
      target: node.target,
      commandsPerHost,
      timeoutMs: 30_000,
      pollMs: 100,
    });
    // The task ends once the first poll has seen it (the heartbeat naming what is in progress;
    // the hosts are read at once, so a per-host heartbeat no longer means the poll is over).
    for (let i = 0; i < 300 && !env.beats.some((b) => JSON.stringify(b).includes('"inProgress"')); i++)
      await new Promise((r) => setTimeout(r, 50));
    node.write('servers-apicomp.json', JSON.stringify([{ ID: 'vm-2', 'Task State': null }]));
    const r = await running;
    expect(r.summary).toBe('no server tasks in progress on apicomp, compute2');
    expect(r.polls).toBeGreaterThan(1);
    expect(env.beats.length).toBeGreaterThan(0);
  });
  it('refuses to read a missing "Task State" column as idle (openstackclient before 6.0 drops it)', async () => {
    node.write('servers-apicomp.json', JSON.stringify([{ ID: 'vm-2', 'Task State': 'resize_migrating' }]));
    const blind = { apicomp: `OS_CLOUD=${osCloud} openstack server list --all-projects --host apicomp -f json -c ID` };
    const err = await failureOf(
      activityEnv().run(acts.waitForNoTasksInProgress, {
        target: node.target,
        commandsPerHost: blind,
        timeoutMs: 5_000,
        pollMs: 100,
      }),
    );
    expect(err.type).toBe('NovaTaskStateMissing');
    expect(err.message).toBe(
      'openstack server list printed no "Task State" column (server vm-2); python-openstackclient before 6.0 drops it silently, so no task could be seen',
    );
  });
});

describe('waitForComputesUp', () => {
  it('does not take an "up" from before the restart for the new process', async () => {
    const restartedAt = Date.now();
    // Reported 5 s before the restart: still "up" for service_down_time, but the old process.
    const stale = naiveUtc(restartedAt - 5000);
    node.write('services.json', JSON.stringify([service(3, 'nova-compute', 'apicomp', 'disabled', 'up', stale)]));
    const input = {
      target: node.target,
      listCommand,
      hosts: ['apicomp'],
      restartedAfter: new Date(restartedAt).toISOString(),
      timeoutMs: 300,
      pollMs: 100,
    };
    const err = await failureOf(activityEnv().run(acts.waitForComputesUp, input));
    expect(err.message).toContain(`apicomp last reported at ${stale} UTC, before its restart`);

    setTimeout(
      () =>
        node.write(
          'services.json',
          JSON.stringify([service(3, 'nova-compute', 'apicomp', 'disabled', 'up', naiveUtc(Date.now()))]),
        ),
      500,
    );
    const r = await activityEnv().run(acts.waitForComputesUp, { ...input, timeoutMs: 10_000 });
    expect(r.summary).toBe('nova-compute reports up on new code on apicomp');
  });
});

describe('findOrphanedServices', () => {
  it('lists unknown hosts and down services the inventory does not run', async () => {
    seedServices();
    const r = await activityEnv().run(acts.findOrphanedServices, {
      target: node.target,
      listCommand,
      knownHosts: ['controller', 'apicomp', 'compute2'],
      knownServices: [
        'controller/nova-conductor',
        'controller/nova-scheduler',
        'apicomp/nova-compute',
        'compute2/nova-compute',
      ],
    });
    expect(r.orphans.map((o) => [o.binary, o.host, o.reason])).toEqual([
      ['nova-compute', 'old-compute', 'host old-compute is not in the inventory'],
      ['nova-conductor', 'compute2', 'nova-conductor on compute2 is down and not in the inventory'],
    ]);
  });
});

describe('pointComputeEndpointAtVip', () => {
  it('sets the public compute endpoint once; the second run finds it set', async () => {
    node.write(
      'endpoints.json',
      JSON.stringify([
        {
          ID: 'ep-public',
          Region: 'RegionOne',
          'Service Name': 'nova',
          'Service Type': 'compute',
          Enabled: true,
          Interface: 'public',
          URL: 'http://10.0.0.11/compute/v2.1',
        },
      ]),
    );
    const { pointComputeEndpointAtVip } = createKeystoneActivities({ runner: node.runner });
    const input = {
      target: node.target,
      osCloud,
      listTemplate: DEFAULT_COMMANDS.endpointList,
      setTemplate: DEFAULT_COMMANDS.endpointSet,
      url: 'http://10.0.0.100:8774/v2.1',
    };
    const first = await activityEnv().run(pointComputeEndpointAtVip, input);
    expect(first).toMatchObject({ alreadyDone: false, previousUrls: { 'ep-public': 'http://10.0.0.11/compute/v2.1' } });
    expect(first.summary).toBe(
      "pointed keystone's public compute endpoint in region RegionOne at http://10.0.0.100:8774/v2.1 (was public ep-public → http://10.0.0.11/compute/v2.1)",
    );
    const second = await activityEnv().run(pointComputeEndpointAtVip, input);
    expect(second).toMatchObject({
      alreadyDone: true,
      summary: "keystone's public compute endpoint in region RegionOne already points at http://10.0.0.100:8774/v2.1",
    });
    expect(node.read('openstack.log')).toContain('endpoint set --url http://10.0.0.100:8774/v2.1 ep-public');
    expect(node.read('openstack.log').match(/endpoint set/g)).toHaveLength(1);
  });
});
