// Parsers on nova's output formats; see test/fixtures/nova/README.md for where they come from.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseUpgradeCheckOutput } from '../activities/nova/novaStatus';
import { parseOnlineMigrationsOutput } from '../activities/nova/onlineMigrations';
import { parseServiceState } from '../activities/nova/services';
import {
  isTaskInProgress,
  parseNovaTimestamp,
  parseServerTasks,
  parseServiceList,
} from '../activities/nova/serviceList';

const fixture = (name: string) => readFileSync(join(__dirname, 'fixtures', 'nova', name), 'utf8');

describe('nova-status upgrade check output', () => {
  it('reads every check of a passing run', () => {
    const checks = parseUpgradeCheckOutput(fixture('nova-status-success.txt'));
    expect(checks.map((c) => c.name)).toEqual([
      'Cells v2',
      'Placement API',
      'Cinder API',
      'Policy File JSON to YAML Migration',
      'Older than N-1 computes',
      'hw_machine_type unset',
      'Service User Token Configuration',
    ]);
    expect(checks.every((c) => c.result === 'Success' && c.details === null)).toBe(true);
  });

  it('joins wrapped details back into one sentence', () => {
    const warning = parseUpgradeCheckOutput(fixture('nova-status-warning.txt')).find((c) => c.result === 'Warning');
    expect(warning).toEqual({
      name: 'Older than N-1 computes',
      result: 'Warning',
      details:
        'Current Nova version does not support computes older than Caracal but the minimum compute service level in your system is 61 and the oldest supported service level is 66.',
    });
  });

  it('reads failures, and nothing from a traceback', () => {
    const failed = parseUpgradeCheckOutput(fixture('nova-status-failure.txt')).filter((c) => c.result === 'Failure');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.name).toBe('Cells v2');
    expect(failed[0]!.details).toContain("Run command 'nova-manage cell_v2 simple_cell_setup' and then retry.");
    expect(parseUpgradeCheckOutput(fixture('nova-status-error.txt'))).toEqual([]);
  });

  it('reads --json output too', () => {
    const json = JSON.stringify({
      name: 'Upgrade Check Results',
      checks: [
        { check: 'Cells v2', result: 0, details: null },
        { check: 'Placement API', result: 1, details: 'old' },
      ],
    });
    expect(parseUpgradeCheckOutput(json)).toEqual([
      { name: 'Cells v2', result: 'Success', details: null },
      { name: 'Placement API', result: 'Warning', details: 'old' },
    ]);
  });
});

describe('nova-manage db online_data_migrations output', () => {
  it('reads the table of a batch that left work', () => {
    const out = parseOnlineMigrationsOutput(fixture('odm-more.txt'));
    expect(out.rows).toEqual([
      { migration: 'populate_dev_uuids', totalNeeded: 0, completed: 0 },
      { migration: 'populate_instance_compute_id', totalNeeded: 120, completed: 50 },
      { migration: 'populate_queued_for_delete', totalNeeded: 0, completed: 0 },
    ]);
    expect(out.table.split('\n')).toHaveLength(7);
    expect(out.errors).toEqual([]);
  });

  it('names the migrations that raised', () => {
    const out = parseOnlineMigrationsOutput(fixture('odm-failed.txt'));
    expect(out.errors).toEqual(['populate_dev_uuids']);
    expect(out.rows.every((r) => r.completed === 0)).toBe(true);
  });
});

describe('systemctl show output', () => {
  it('reads the properties in whatever order systemd prints them', () => {
    expect(
      parseServiceState(
        'ExecMainStartTimestampMonotonic=123456789\nSubState=running\nMainPID=4242\nActiveState=active\n',
      ),
    ).toEqual({
      mainPid: 4242,
      activeState: 'active',
      subState: 'running',
      startedMonotonic: 123456789,
    });
    expect(
      parseServiceState('MainPID=0\nActiveState=inactive\nSubState=dead\nExecMainStartTimestampMonotonic=0\n').mainPid,
    ).toBe(0);
    expect(() => parseServiceState('Failed to connect to bus')).toThrow(/no ActiveState/);
  });
});

describe('openstack CLI JSON', () => {
  it('reads compute service list with integer or UUID ids', () => {
    const list = parseServiceList(
      JSON.stringify([
        {
          ID: 3,
          Binary: 'nova-compute',
          Host: 'apicomp',
          Zone: 'nova',
          Status: 'enabled',
          State: 'up',
          'Updated At': '2025-11-24T15:40:01.000000',
        },
        {
          ID: 'd1a2b3c4-0000-4000-8000-000000000001',
          Binary: 'nova-conductor',
          Host: 'ctl',
          Zone: 'internal',
          Status: 'enabled',
          State: 'up',
          'Updated At': null,
        },
      ]),
    );
    expect(list.map((s) => s.Host)).toEqual(['apicomp', 'ctl']);
    expect(() => parseServiceList('Missing value auth-url required for auth plugin password')).toThrow(
      /did not print JSON/,
    );
  });

  it('reads nova timestamps as UTC', () => {
    expect(parseNovaTimestamp('2025-11-24T15:40:01.123456')).toBe(Date.parse('2025-11-24T15:40:01.123Z'));
    expect(parseNovaTimestamp('2025-11-24 15:40:01')).toBe(Date.parse('2025-11-24T15:40:01Z'));
    expect(parseNovaTimestamp('2025-11-24T15:40:01+01:00')).toBe(Date.parse('2025-11-24T14:40:01Z'));
    expect(parseNovaTimestamp(null)).toBeUndefined();
    expect(parseNovaTimestamp('None')).toBeUndefined();
  });

  it('counts a server with any task state as in progress', () => {
    const servers = parseServerTasks(
      JSON.stringify([
        { ID: 'a', 'Task State': null },
        { ID: 'b', 'Task State': 'migrating' },
        { ID: 'c', 'Task State': '' },
      ]),
    );
    expect(servers.filter(isTaskInProgress).map((s) => s.ID)).toEqual(['b']);
  });
});
