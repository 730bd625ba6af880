import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export interface CliRun {
  stdout: string;
  stderr: string;
  code: number;
}

/** The CLI as an operator runs it: a subprocess, its exit code and both streams. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  try {
    const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'client/cli.ts', ...args], {
      env: { ...process.env, ...env },
    });
    return { ...r, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}
