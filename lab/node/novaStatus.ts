// nova-status upgrade check, printed as oslo.upgradecheck prints it; every check passes
// unless the fault file says otherwise.
import { join } from 'node:path';
import { fail, nodeEnv, readJsonOr } from './env';
import { FAULTS } from './layout';
import { prettyTable, wrap } from './prettytable';

const CHECKS = [
  'Cells v2',
  'Placement API',
  'Cinder API',
  'Policy File JSON to YAML Migration',
  'Older than N-1 computes',
  'hw_machine_type unset',
  'Service User Token Configuration',
];
const RESULT = ['Success', 'Warning', 'Failure'];

type Fault = Record<string, { code?: number; details?: string }> & { error?: string };

export function main(argv: string[]): void {
  const env = nodeEnv();
  const args = argv.filter((a) => !a.startsWith('--config'));
  if (args[0] !== 'upgrade' || args[1] !== 'check')
    fail(
      'usage: nova-status [-h] [--config-dir DIR] [--config-file PATH] {upgrade} ...\nnova-status: error: argument category: invalid choice',
      2,
    );
  const fault = readJsonOr<Fault>(join(env.state.faults, FAULTS.upgradeCheck), {});
  if (typeof fault.error === 'string') {
    process.stdout.write(
      `Error:\nTraceback (most recent call last):\n  File "/usr/local/lib/python3.12/dist-packages/oslo_upgradecheck/upgradecheck.py", line 196, in run\n    return conf.command.action_fn()\n           ^^^^^^^^^^^^^^^^^^^^^^^^\nRuntimeError: ${fault.error}\n\n`,
    );
    process.exitCode = 255;
    return;
  }
  let code = 0;
  const rows = CHECKS.map((name) => {
    const f = fault[name] as { code?: number; details?: string } | undefined;
    const c = Math.min(Math.max(f?.code ?? 0, 0), 2);
    code = Math.max(code, c);
    const details = f?.details ? wrap(f.details, 60, '  ').join('\n') : 'None';
    return [`Check: ${name}\nResult: ${RESULT[c]}\nDetails: ${details}`];
  });
  process.stdout.write(`${prettyTable(['Upgrade Check Results'], rows, { align: 'l', hrules: 'all' })}\n`);
  process.exitCode = code;
}
