// MariaDB and RabbitMQ from Debian for a real-nova lab, started by the lab itself (there is no
// systemd here) on the controller's loopback address, with every file under the state dir.
// Ports are not the defaults, so a system MariaDB or RabbitMQ (or another lab) never clashes.
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const MARIADB_PORT = 13306;
export const RABBIT_PORT = 15673;
/** epmd's port for the lab's RabbitMQ (bound to the lab's address): a system epmd holds 4369. */
const EPMD_PORT = 14369;
/**
 * Erlang's distribution port for the lab's RabbitMQ. Erlang listens on it on every interface
 * (not the lab's address), so one fixed port let a second real lab on another subnet fail at
 * start with "dist_port_already_used, 35673" while the first ran: one port per /24 instead.
 */
export function rabbitDistPort(address: string): number {
  const [, b = 0, c = 0] = address.split('.').map(Number);
  return 30_000 + (b % 16) * 256 + c;
}

export const DB_USER = 'lab';
export const DB_PASSWORD = 'secret';
export const RABBIT_USER = 'stackrabbit';
export const RABBIT_PASSWORD = 'secret';

export interface BackingDirs {
  mariadb: string;
  rabbitmq: string;
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return false;
  }
}

function readPid(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').split('\n').filter(Boolean).slice(-lines).join('\n');
  } catch {
    return '(no log written)';
  }
}

/** Environment marker: labDown's sweep finds whatever a lab process started by it. */
function labEnv(stateDir: string, extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    LANG: 'C.UTF-8',
    NOVA_LAB_STATE: stateDir,
    ...extra,
  };
}

export const mariadbFiles = (dir: string) => ({
  data: join(dir, 'data'),
  socket: join(dir, 'mysqld.sock'),
  pid: join(dir, 'mysqld.pid'),
  log: join(dir, 'mariadb.log'),
});

export async function startMariadb(stateDir: string, dir: string, address: string, databases: string[]): Promise<void> {
  const f = mariadbFiles(dir);
  mkdirSync(dir, { recursive: true });
  let pid = readPid(f.pid);
  if (!alive(pid)) {
    if (!existsSync(join(f.data, 'mysql'))) {
      try {
        await run(
          'mariadb-install-db',
          [
            '--no-defaults',
            `--datadir=${f.data}`,
            '--user=root',
            '--auth-root-authentication-method=normal',
            '--skip-test-db',
          ],
          { env: labEnv(stateDir, {}), cwd: dir },
        );
      } catch (e) {
        throw new Error(
          `MariaDB could not initialise its data directory ${f.data}: ${(e as { stderr?: string }).stderr ?? String(e)}`,
        );
      }
    }
    const child = spawn(
      'mariadbd',
      [
        '--no-defaults',
        `--datadir=${f.data}`,
        '--user=root',
        `--bind-address=${address}`,
        `--port=${MARIADB_PORT}`,
        `--socket=${f.socket}`,
        `--pid-file=${f.pid}`,
        `--log-error=${f.log}`,
        '--skip-name-resolve',
        // Sized for a lab: the default 128 MiB pool and performance schema buy nothing here.
        '--innodb-buffer-pool-size=64M',
        '--performance-schema=OFF',
        '--max-connections=1000',
        '--innodb-flush-log-at-trx-commit=2',
      ],
      { detached: true, stdio: 'ignore', env: labEnv(stateDir, {}), cwd: dir },
    );
    child.unref();
    pid = child.pid;
  }
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await run('mariadb', ['--no-defaults', '-S', f.socket, '-uroot', '-e', 'SELECT 1'], { timeout: 5000 });
      break;
    } catch {
      if (Date.now() > deadline)
        throw new Error(
          `MariaDB did not start on ${address}:${MARIADB_PORT} within 60 s; its log is ${f.log}:\n${tail(f.log)}`,
        );
      if (!alive(pid)) throw new Error(`MariaDB exited at start; its log is ${f.log}:\n${tail(f.log)}`);
      await sleep(200);
    }
  }
  const sql = [
    `CREATE USER IF NOT EXISTS '${DB_USER}'@'%' IDENTIFIED BY '${DB_PASSWORD}'`,
    `GRANT ALL PRIVILEGES ON *.* TO '${DB_USER}'@'%'`,
    ...databases.map((d) => `CREATE DATABASE IF NOT EXISTS ${d} CHARACTER SET utf8mb3`),
  ].join(';');
  await run('mariadb', ['--no-defaults', '-S', f.socket, '-uroot', '-e', sql]);
}

/** Runs SQL as root over the lab's socket; tab-separated rows without a header. */
export async function mariadbQuery(dir: string, sql: string): Promise<string[][]> {
  const { stdout } = await run('mariadb', [
    '--no-defaults',
    '-S',
    mariadbFiles(dir).socket,
    '-uroot',
    '-N',
    '-B',
    '-e',
    sql,
  ]);
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t'));
}

export const rabbitFiles = (dir: string) => ({
  mnesia: join(dir, 'mnesia'),
  logs: join(dir, 'log'),
  home: join(dir, 'home'),
  config: join(dir, 'rabbitmq.conf'),
  definitions: join(dir, 'definitions.json'),
  plugins: join(dir, 'enabled_plugins'),
  stdout: join(dir, 'stdout.log'),
  pid: join(dir, 'rabbitmq.pid'),
});

export const rabbitNodeName = (address: string) => `nova-lab-${address.replace(/\./g, '-')}@localhost`;

/** RabbitMQ's own salted SHA-256 password hash, as its definitions file takes it. */
function rabbitPasswordHash(password: string): string {
  const salt = randomBytes(4);
  return Buffer.concat([
    salt,
    createHash('sha256')
      .update(Buffer.concat([salt, Buffer.from(password)]))
      .digest(),
  ]).toString('base64');
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  if (statSync(path).isDirectory()) for (const e of readdirSync(path)) chownTree(join(path, e), uid, gid);
}

async function rabbitUser(): Promise<{ uid: number; gid: number }> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', 'rabbitmq']), run('id', ['-g', 'rabbitmq'])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    throw new Error('the rabbitmq user does not exist: install rabbitmq-server (scripts/install.sh does)');
  }
}

/** rabbitmq-server runs as the rabbitmq user, which must reach its directories. */
function refuseUntraversable(dir: string): void {
  for (let d = dirname(dir); ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) {
      throw new Error(
        `RabbitMQ runs as the rabbitmq user, which cannot enter ${d} (mode ${(statSync(d).mode & 0o777).toString(8)}); put the lab's state directory where every user may traverse, or chmod o+x ${d}`,
      );
    }
    if (d === dirname(d)) return;
  }
}

export async function startRabbitmq(stateDir: string, dir: string, address: string, vhosts: string[]): Promise<void> {
  const f = rabbitFiles(dir);
  mkdirSync(dir, { recursive: true });
  refuseUntraversable(dir);
  const nodeName = rabbitNodeName(address);
  const logFile = join(f.logs, `${nodeName}.log`);
  if (!alive(readPid(f.pid))) {
    for (const d of [dir, f.mnesia, f.logs, f.home]) mkdirSync(d, { recursive: true });
    writeFileSync(
      f.config,
      [
        `listeners.tcp.1 = ${address}:${RABBIT_PORT}`,
        'loopback_users = none',
        `load_definitions = ${f.definitions}`,
        '',
      ].join('\n'),
    );
    writeFileSync(f.plugins, '[].\n');
    const perm = (vhost: string) => ({ user: RABBIT_USER, vhost, configure: '.*', write: '.*', read: '.*' });
    writeFileSync(
      f.definitions,
      JSON.stringify({
        users: [
          {
            name: RABBIT_USER,
            password_hash: rabbitPasswordHash(RABBIT_PASSWORD),
            hashing_algorithm: 'rabbit_password_hashing_sha256',
            tags: ['administrator'],
          },
        ],
        vhosts: ['/', ...vhosts].map((name) => ({ name })),
        permissions: ['/', ...vhosts].map(perm),
      }),
    );
    // rabbitmq-server refuses to run as root and its files must be the rabbitmq user's.
    const { uid, gid } = await rabbitUser();
    chownTree(dir, uid, gid);
    const out = openSync(f.stdout, 'a');
    const child = spawn(
      'runuser',
      ['-u', 'rabbitmq', '--', 'env', `HOME=${f.home}`, '/usr/lib/rabbitmq/bin/rabbitmq-server'],
      {
        detached: true,
        stdio: ['ignore', out, out],
        cwd: f.home,
        env: labEnv(stateDir, {
          RABBITMQ_NODENAME: nodeName,
          RABBITMQ_NODE_IP_ADDRESS: address,
          RABBITMQ_NODE_PORT: String(RABBIT_PORT),
          RABBITMQ_DIST_PORT: String(rabbitDistPort(address)),
          RABBITMQ_MNESIA_BASE: f.mnesia,
          RABBITMQ_LOG_BASE: f.logs,
          RABBITMQ_CONFIG_FILE: f.config,
          RABBITMQ_ENABLED_PLUGINS_FILE: f.plugins,
          ERL_EPMD_PORT: String(EPMD_PORT),
          ERL_EPMD_ADDRESS: address,
        }),
      },
    );
    closeSync(out);
    child.unref();
    writeFileSync(f.pid, `${child.pid}\n`);
  }
  // Measured: 8 s on an idle machine, 30 s while pip builds a venv beside it.
  const deadline = Date.now() + 120_000;
  while (!(await tcpOpen(address, RABBIT_PORT))) {
    if (!alive(readPid(f.pid)))
      throw new Error(
        `RabbitMQ exited at start; its log is ${logFile} (and ${f.stdout}):\n${tail(existsSync(logFile) ? logFile : f.stdout)}`,
      );
    if (Date.now() > deadline)
      throw new Error(
        `RabbitMQ did not listen on ${address}:${RABBIT_PORT} within 120 s; its log is ${logFile}:\n${tail(logFile)}`,
      );
    await sleep(250);
  }
}

/**
 * Pids of live processes of the lab: its marker in their environment, or working in a node root
 * or a backing directory.
 */
export function backingPids(stateDir: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
    .map(Number)
    .filter((pid) => {
      try {
        if (!alive(pid)) return false;
        if (`\0${readFileSync(`/proc/${pid}/environ`, 'utf8')}`.includes(`\0NOVA_LAB_STATE=${stateDir}\0`)) return true;
        const cwd = readlinkSync(`/proc/${pid}/cwd`);
        return [join(stateDir, 'nodes'), join(stateDir, 'backing')].some((d) => cwd === d || cwd.startsWith(`${d}/`));
      } catch {
        return false;
      }
    });
}

/** Stops MariaDB and RabbitMQ: SIGTERM (both shut down cleanly on it), then SIGKILL. */
export async function stopBacking(dirs: BackingDirs): Promise<void> {
  const pids = [readPid(mariadbFiles(dirs.mariadb).pid), readPid(rabbitFiles(dirs.rabbitmq).pid)].filter(
    alive,
  ) as number[];
  for (const pid of pids) {
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
  }
  const deadline = Date.now() + 15_000;
  while (pids.some(alive) && Date.now() < deadline) await sleep(100);
  for (const pid of pids.filter(alive)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
