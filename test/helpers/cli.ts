import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export interface CliRun {
  stdout: string;
  stderr: string;
  code: number;
}

/**
 * `npm test` compiles dist/ first and says so: the compiled CLI starts on 1.2 s of CPU, the
 * sources through tsx on 3.1 s (`time node bin/nova-upgrade --help` against `time node --import
 * tsx client/cli.ts --help`), and the suite runs the CLI a few hundred times. A test run on its
 * own (`npx vitest run test/x.test.ts`) runs the sources, which are never stale.
 */
const entry =
  process.env.NOVA_UPGRADE_TEST_COMPILED === '1' ? ['bin/nova-upgrade'] : ['--import', 'tsx', 'client/cli.ts'];

/** The CLI as an operator runs it: a subprocess, its exit code and both streams. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  try {
    const r = await promisify(execFile)(process.execPath, [...entry, ...args], {
      env: { ...process.env, ...env },
    });
    return { ...r, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}
