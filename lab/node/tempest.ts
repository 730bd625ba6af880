// tempest run: a small real unittest suite run by stestr itself, so the output (Totals block
// and all) and the exit codes are stestr's. Like tempest, it finds nova through the catalog's
// public compute endpoint, so it runs through the VIP once the endpoint points there.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cloudFiles, type Endpoint } from './cloud';
import { fail, nodeEnv, readJsonOr, readTextOr } from './env';
import { FAULTS } from './layout';

export function main(argv: string[]): void {
  const env = nodeEnv();
  if (argv[0] !== 'run')
    fail('usage: tempest run [--smoke] [--regex REGEX] [--concurrency N] [--serial] [FILTER...]', 2);
  const args = ['run'];
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    // Every lab test is a smoke test; --smoke narrows nothing.
    if (a === '--smoke' || a === '-s') continue;
    if (a === '--regex' || a === '-r') args.push(argv[++i] ?? '');
    else if (a.startsWith('--regex=')) args.push(a.slice(8));
    else if (a === '--concurrency' || a === '-w') args.push('--concurrency', argv[++i] ?? '0');
    else if (a === '--serial' || a === '-t') args.push('--serial');
    else args.push(a);
  }
  const compute = readJsonOr<Endpoint[]>(cloudFiles(env.stateDir).endpoints, []).find(
    (e) => e['Service Type'] === 'compute' && e.Interface === 'public',
  );
  if (!compute) fail('tempest: no public compute endpoint in the catalog', 1);
  const faultFile = join(env.state.faults, FAULTS.tempest);
  const fault = existsSync(faultFile) ? readTextOr(faultFile, '').trim() || 'test_list_servers' : '';
  const cwd = existsSync(join(process.cwd(), '.stestr.conf')) ? process.cwd() : env.state.tempest;
  // stestr runs ${PYTHON:-python}; `python` here could be pyenv's shim, not Debian's python3.
  const r = spawnSync('/usr/bin/stestr', args, {
    cwd,
    stdio: 'inherit',
    env: { ...process.env, PYTHON: '/usr/bin/python3', LAB_COMPUTE_URL: compute.URL, LAB_TEMPEST_FAULT: fault },
  });
  if (r.error) fail(`tempest: could not run stestr: ${r.error.message}`, 1);
  process.exitCode = r.status ?? 1;
}
