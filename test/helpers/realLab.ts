// What the real-nova lab's tests read from the real programs (test/realLab*.test.ts): nova's own
// service version of a release, the code a running unit imported, nova's services rows, the
// compute service list through nova's API, and the tool's detached-run records on a node.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { labDown, type LabInfo } from '../../lab/lab';
import { backingPids, mariadbQuery } from '../../lab/real/backing';
import { stopWorkerProcess } from '../../worker/process';
import { backingDirs, runNodeBin, venvRoot } from '../../lab/real/realLab';

const run = promisify(execFile);

/** nova's SERVICE_VERSION in a release's venv (nova/objects/service.py), read by nova's own Python. */
export async function serviceVersion(release: string): Promise<number> {
  const py = join(venvRoot(), `nova-${release}`, 'bin', 'python3');
  const { stdout } = await run(py, ['-c', 'from nova.objects.service import SERVICE_VERSION; print(SERVICE_VERSION)'], {
    env: { ...process.env, PYTHONWARNINGS: 'ignore' },
  });
  return Number(stdout.trim().split('\n').at(-1));
}

/**
 * Which venv a running unit's Python imported its code from: the C extensions mapped by the
 * processes of its group. uwsgi's master (lazy-apps) imports no app code; its workers do.
 */
export function venvsMappedBy(pid: number): string[] {
  const venvs = new Set<string>();
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (pgrp !== pid) continue;
      for (const m of readFileSync(`/proc/${p}/maps`, 'utf8').matchAll(/\/venvs\/([a-z]+-\d+\.\d+\.\d+)\//g))
        venvs.add(m[1]!);
    } catch {
      /* gone */
    }
  }
  return [...venvs];
}

/** Every live (not deleted) services row of a cell database: host, binary and service version. */
async function liveServiceRows(
  stateDir: string,
  db: string,
): Promise<Array<{ host: string; binary: string; version: number }>> {
  const rows = await mariadbQuery(
    backingDirs(stateDir).mariadb,
    `SELECT host, \`binary\`, version FROM ${db}.services WHERE deleted = 0`,
  );
  return rows.map(([host, binary, version]) => ({ host: host!, binary: binary!, version: Number(version) }));
}

/** Every cell database has live services rows, and each is at `version` (nova's own record of the upgrade). */
export async function expectLiveServiceRowsAt(stateDir: string, dbs: string[], version: number): Promise<void> {
  for (const db of dbs) {
    const rows = await liveServiceRows(stateDir, db);
    expect(rows.length, db).toBeGreaterThan(0);
    for (const r of rows) expect({ db, ...r }).toEqual({ db, ...r, version });
  }
}

/** `openstack compute service list` through nova's API (scatter-gather over the cells): "host/binary state status". */
export async function computeServiceList(controller: LabInfo['nodes'][number]): Promise<string[]> {
  // The node has no OS_CLOUD: name the cloud, as the inventory's osCloud does for the tool.
  const list = JSON.parse(
    await runNodeBin(
      controller,
      'openstack',
      ['--os-cloud', 'devstack-admin', 'compute', 'service', 'list', '-f', 'json'],
      300_000,
    ),
  ) as Array<{ Binary: string; Host: string; State: string; Status: string }>;
  return list.map((s) => `${s.Host}/${s.Binary} ${s.State} ${s.Status}`).sort();
}

export interface RunRecord {
  key: string;
  command: string;
  exit?: number;
  finishedAt?: number;
}

/** The tool's detached runs on a node, as it left them in ~/.nova-upgrade/runs (HOME is the node root). */
export function runRecords(root: string): RunRecord[] {
  const runs = join(root, '.nova-upgrade', 'runs');
  if (!existsSync(runs)) return [];
  const read = (d: string, f: string) => {
    try {
      return readFileSync(join(runs, d, f), 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  return readdirSync(runs).map((key) => {
    const exit = read(key, 'exit');
    const finished = read(key, 'finished_at');
    return {
      key,
      command: read(key, 'command') ?? '',
      ...(exit !== undefined ? { exit: Number(exit) } : {}),
      ...(finished !== undefined ? { finishedAt: Number(finished) } : {}),
    };
  });
}

/**
 * A real-lab file's afterAll: its worker and its lab stopped, and nothing the lab started left
 * running (services, MariaDB, RabbitMQ, epmd), even after a failed test. NOVA_UPGRADE_KEEP_LAB=1
 * keeps `dir` (every unit's log, the run records) to read afterwards.
 */
export async function tearDownRealLab(dir: string, stateDir: string): Promise<void> {
  await stopWorkerProcess(dir);
  await labDown(stateDir);
  expect(backingPids(stateDir)).toEqual([]);
  if (process.env.NOVA_UPGRADE_KEEP_LAB !== '1') rmSync(dir, { recursive: true, force: true });
}
