// What every node script needs: which node it runs on (from the environment sshd's SetEnv
// gives each session), small file helpers, and the node's events log.
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { nodeLayout, stateLayout, type NodeConfig } from './layout';

export interface NodeEnv {
  name: string;
  root: string;
  stateDir: string;
  node: ReturnType<typeof nodeLayout>;
  state: ReturnType<typeof stateLayout>;
  config: NodeConfig;
}

export function nodeEnv(): NodeEnv {
  const root = process.env.NOVA_LAB_ROOT;
  const stateDir = process.env.NOVA_LAB_STATE;
  const name = process.env.NOVA_LAB_NODE;
  if (!root || !stateDir || !name) {
    process.stderr.write(
      'not on a nova-upgrade lab node: NOVA_LAB_ROOT, NOVA_LAB_STATE and NOVA_LAB_NODE must be set\n',
    );
    process.exit(1);
  }
  const node = nodeLayout(root);
  return { name, root, stateDir, node, state: stateLayout(stateDir), config: readJson<NodeConfig>(node.config) };
}

export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

export function readJsonOr<T>(path: string, fallback: T): T {
  try {
    return readJson<T>(path);
  } catch {
    return fallback;
  }
}

/** Rename is atomic, so a concurrent reader sees the old or the new file, never half of one. */
export function writeJson(path: string, value: unknown): void {
  writeText(path, `${JSON.stringify(value, null, 2)}\n`);
}

export function writeText(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = mkdtempSync(join(dirname(path), '.tmp-'));
  const file = join(tmp, 'f');
  writeFileSync(file, text);
  renameSync(file, path);
  rmdirSync(tmp);
}

export function readTextOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

export function codeVersion(env: Pick<NodeEnv, 'node'>): string {
  // In the kolla lab's containers the code is the image's: its release file says which.
  const image = process.env.NOVA_LAB_RELEASE_FILE;
  return readFileSync(image || env.node.codeVersion, 'utf8').trim();
}

/** One line per lifecycle event, so tests can count restarts and HUPs per unit. */
export function logEvent(
  env: Pick<NodeEnv, 'node'>,
  verb: string,
  unit: string,
  fields: Record<string, string | number>,
): void {
  const kv = Object.entries({ ...fields, at: new Date().toISOString() })
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  appendFileSync(env.node.events, `${verb} ${unit} ${kv}\n`);
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** mkdir is atomic: the "cloud database" files are read-modify-written under this lock. */
export function withLock<T>(dir: string, fn: () => T, staleMs = 10_000): T {
  const lock = join(dir, '.lock');
  mkdirSync(dir, { recursive: true });
  const deadline = Date.now() + staleMs;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline)
        rmdirSync(lock); // a holder that died; take over
      else sleepSync(10);
    }
  }
  // A stand-in that fails inside the lock exits through process.exit, which skips finally.
  const release = () => {
    try {
      rmdirSync(lock);
    } catch {
      /* already gone */
    }
  };
  process.once('exit', release);
  try {
    return fn();
  } finally {
    process.removeListener('exit', release);
    release();
  }
}

export function fail(message: string, code = 1): never {
  process.stderr.write(message.endsWith('\n') ? message : `${message}\n`);
  process.exit(code);
}
