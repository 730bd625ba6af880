// Where the project lives and where it keeps runtime state. The same code runs from the
// sources (tsx, vitest) and from dist/, so the root is found by walking up, not by a fixed depth.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

let cachedRoot: string | undefined;

export function repoRoot(): string {
  if (cachedRoot) return cachedRoot;
  let dir = resolve(__dirname);
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'nova-upgrade')
          return (cachedRoot = dir);
      } catch {
        // An unreadable package.json higher up is not ours; keep walking.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the nova-upgrade package root above ${__dirname}`);
    dir = parent;
  }
}

/** Dev server data, pid and log files; overridable so several checkouts can share one server. */
export function defaultStateDir(): string {
  return process.env.NOVA_UPGRADE_STATE_DIR ?? join(repoRoot(), '.state');
}
