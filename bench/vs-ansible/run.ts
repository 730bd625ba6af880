// bench/vs-ansible: the tool and the project's own Ansible playbook for the same runbook, run
// interleaved (tool, playbook, tool, …) on fresh default two-node stand-in labs on
// 127.0.34.0/24, each with the same VIP probe (40 req/s, 4 clients). Prints both walls (start
// to result), their ratio, the critical path (the time during which a remote command ran, from
// the nodes' own durations in the workflow's history; commands at once count once) and both
// probes.
//
//   npm run build && npx tsx bench/vs-ansible/run.ts [--pairs 3] [--state-dir /tmp/nu-bench]
//
// Needs Temporal's CLI (scripts/install.sh) and builds Ansible into ~/.cache/nova-upgrade/ansible
// on first use (bench/vs-ansible/install-ansible.sh). Goals (issue 16), reported, never asserted:
// tool wall ≤ 1.3 × critical path, ≥ 2 × faster than the playbook, 0 failed requests.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { VipProbe, type ProbeSnapshot } from '../../activities/http/probe';
import { createHaproxyActivities } from '../../activities/haproxy/activities';
import { SshPool } from '../../activities/ssh/pool';
import { commandAudit, type AuditRow } from '../../client/history';
import { connectClient, resolveConnection } from '../../client/connection';
import { runLabDemo } from '../../client/labDemo';
import { loadInventory } from '../../inventory/load';
import { labDown, labUp, type LabInfo } from '../../lab/lab';
import { playbookFor } from './playbook';

const SUBNET = '127.0.34';
const { values } = parseArgs({
  options: {
    pairs: { type: 'string', default: '3' },
    'state-dir': { type: 'string', default: '/tmp/nu-bench-vs-ansible' },
  },
});
const pairs = Number(values.pairs);
const root = values['state-dir']!;
const say = (l: string) => process.stderr.write(`${l}\n`);

interface Probe {
  requests: number;
  failed: number;
  p99: number;
}
const probeOf = (s: ProbeSnapshot): Probe => ({ requests: s.requests, failed: s.failedRequests, p99: s.latencyMs.p99 });

/**
 * The critical path: the time during which at least one remote command ran, from the nodes' own
 * command durations (each row's end and duration): the union of their intervals. Commands that
 * ran at once (the restarts of a group, tempest beside the API restarts, the reads of several
 * nodes) count once, for the span they cover together; everything outside that union is
 * orchestration. `summedMs` is every command's duration added up, the serial work a runbook
 * that runs one command after another (the playbook) cannot go below.
 */
function criticalPathMs(rows: AuditRow[]): { busyMs: number; summedMs: number } {
  const spans = rows
    .map((r) => ({ end: Date.parse(r.at), ms: r.durationMs }))
    .filter((r) => Number.isFinite(r.end))
    .map((r) => [r.end - r.ms, r.end] as const)
    .sort((a, b) => a[0] - b[0]);
  let busyMs = 0;
  let from = -Infinity;
  let to = -Infinity;
  for (const [start, end] of spans) {
    if (start > to) {
      if (to > from) busyMs += to - from;
      [from, to] = [start, end];
    } else to = Math.max(to, end);
  }
  if (to > from) busyMs += to - from;
  return { busyMs, summedMs: rows.reduce((n, r) => n + r.durationMs, 0) };
}

async function haproxyRetries(lab: LabInfo): Promise<{ retries: number; redispatches: number }> {
  const pool = new SshPool();
  try {
    const r = await createHaproxyActivities({ runner: pool }).readBackendCounters({
      lbs: lab.lbs.map((l) => ({ node: l.node, socket: { via: 'unix' as const, path: l.socket } })),
      backend: 'nova-api',
    });
    const all = Object.values(r.counters).flatMap((s) => Object.values(s));
    return {
      retries: all.reduce((n, c) => n + c.wretr, 0),
      redispatches: all.reduce((n, c) => n + c.wredis, 0),
    };
  } finally {
    await pool.close();
  }
}

async function toolRun(i: number) {
  const stateDir = join(root, 'tool');
  const s = await runLabDemo({ stateDir, mode: 'monotonic', subnet: SUBNET, port: 7343, uiPort: 8343, out: () => {} });
  const conn = resolveConnection({ address: '127.0.0.1:7343', namespace: 'default' });
  const client = await connectClient(conn);
  const audit = await commandAudit(client, s.workflowId);
  await client.connection.close();
  const crit = criticalPathMs(audit.commands);
  await labDown(join(stateDir, 'lab'));
  say(
    `tool #${i}: ${s.status} in ${s.upgradeSeconds} s; critical path ${(crit.busyMs / 1000).toFixed(1)} s (commands summed ${(crit.summedMs / 1000).toFixed(1)} s)`,
  );
  return {
    ok: s.status === 'completed',
    wallS: s.upgradeSeconds,
    critS: crit.busyMs / 1000,
    summedS: crit.summedMs / 1000,
    probe: { requests: s.requests, failed: s.failedRequests, p99: s.latencyMs.p99 },
    retries: s.haproxyRetries,
    redispatches: s.haproxyRedispatches,
  };
}

function ansibleCfg(dir: string, lab: LabInfo): void {
  const hosts = lab.nodes.map(
    (n) =>
      `${n.name} ansible_host=${n.address} ansible_port=${n.sshPort} ansible_user=root ansible_ssh_private_key_file=${lab.privateKeyPath}`,
  );
  writeFileSync(
    join(dir, 'hosts.ini'),
    `localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n[nodes]\n${hosts.join('\n')}\n[nodes:vars]\nansible_python_interpreter=/usr/bin/python3\n# Each lab node has its own HOME; async_status must look where the async task wrote.\n[all:vars]\nansible_async_dir=${join(dir, 'async')}\n`,
  );
  writeFileSync(
    join(dir, 'ansible.cfg'),
    `[defaults]
inventory = hosts.ini
host_key_checking = True
gathering = explicit
forks = 5
interpreter_python = /usr/bin/python3
[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile=${lab.knownHostsPath}
`,
  );
}

async function ansibleRun(i: number, bin: string) {
  const dir = join(root, 'ansible');
  const labDir = join(dir, 'lab');
  await labDown(labDir);
  rmSync(labDir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const lab = await labUp({ stateDir: labDir, subnet: SUBNET });
  const inv = loadInventory(lab.inventoryPath);
  const { text } = playbookFor(inv);
  writeFileSync(join(dir, 'upgrade.yml'), text);
  ansibleCfg(dir, lab);
  const probe = new VipProbe({
    url: lab.vipUrl,
    paths: ['/', '/v2.1/', '/v2.1/flavors'],
    ratePerSecond: 40,
    clients: 4,
    requestTimeoutMs: 10_000,
    maxDurationMs: 30 * 60_000,
  });
  probe.start();
  const started = Date.now();
  const code = await new Promise<number | null>((resolve) => {
    const p = spawn(join(bin, 'ansible-playbook'), ['upgrade.yml'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ANSIBLE_CONFIG: join(dir, 'ansible.cfg') },
    });
    let log = '';
    p.stdout.on('data', (d: Buffer) => (log += d.toString()));
    p.stderr.on('data', (d: Buffer) => (log += d.toString()));
    p.on('exit', (c) => {
      writeFileSync(join(dir, `run-${i}.log`), log);
      resolve(c);
    });
  });
  const wallS = (Date.now() - started) / 1000;
  const snap = await probe.stop();
  const counters = await haproxyRetries(lab);
  await labDown(labDir);
  say(`ansible #${i}: exit ${code} in ${wallS.toFixed(1)} s (log ${join(dir, `run-${i}.log`)})`);
  return { ok: code === 0, wallS, probe: probeOf(snap), ...counters };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main() {
  const bin = execFileSync('bash', [join(__dirname, 'install-ansible.sh')], { encoding: 'utf8' }).trim();
  mkdirSync(root, { recursive: true });
  const tool: Awaited<ReturnType<typeof toolRun>>[] = [];
  const ans: Awaited<ReturnType<typeof ansibleRun>>[] = [];
  for (let i = 1; i <= pairs; i++) {
    tool.push(await toolRun(i));
    ans.push(await ansibleRun(i, bin));
  }
  const rows = tool.map((t, i) => {
    const a = ans[i]!;
    return `| ${i + 1} | ${t.wallS.toFixed(1)} s${t.ok ? '' : ' (FAILED)'} | ${a.wallS.toFixed(1)} s${a.ok ? '' : ' (FAILED)'} | ${(t.wallS / a.wallS).toFixed(2)} | ${t.critS.toFixed(1)} s | ${t.summedS.toFixed(1)} s | ${(t.wallS / t.critS).toFixed(2)} × | ${t.probe.requests}/${t.probe.failed} failed, p99 ${t.probe.p99} ms | ${a.probe.requests}/${a.probe.failed} failed, p99 ${a.probe.p99} ms | ${t.retries}/${t.redispatches} · ${a.retries}/${a.redispatches} |`;
  });
  const [tw, aw, cp, sm] = [
    median(tool.map((t) => t.wallS)),
    median(ans.map((a) => a.wallS)),
    median(tool.map((t) => t.critS)),
    median(tool.map((t) => t.summedS)),
  ];
  const out = [
    `| pair | tool wall | Ansible wall | tool / Ansible | critical path (commands' union) | commands summed | tool / critical path | tool probe (requests/failed) | Ansible probe | HAProxy retries/redispatches (tool · Ansible) |`,
    `|---|---|---|---|---|---|---|---|---|---|`,
    ...rows,
    `| median | ${tw.toFixed(1)} s | ${aw.toFixed(1)} s | ${(tw / aw).toFixed(2)} | ${cp.toFixed(1)} s | ${sm.toFixed(1)} s | ${(tw / cp).toFixed(2)} × | | | |`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  execFileSync(
    join(__dirname, '..', '..', 'bin', 'nova-upgrade'),
    ['lab', 'stop-all', '--state-dir', join(root, 'tool')],
    {
      stdio: 'ignore',
    },
  );
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    say(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  },
);
