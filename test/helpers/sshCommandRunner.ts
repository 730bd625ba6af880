// Test-only RemoteRunner over the OpenSSH client, for tests that must not wait on the pool
// (activities/ssh/pool.ts). Detached runs keep pid, output and exit code under
// <stateDir>/<key> on the node, so a second call with the same key reattaches.
import { spawn } from 'node:child_process';
import type { CommandResult, DetachedOptions, RemoteRunner, RunOptions } from '../../activities/ssh/types';
import type { SshTarget } from '../../common/sshTarget';

function sshArgs(t: SshTarget): string[] {
  return [
    '-F',
    '/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${t.knownHostsPath ?? '~/.ssh/known_hosts'}`,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `ConnectTimeout=${Math.ceil(t.connectTimeoutMs / 1000)}`,
    '-o',
    'LogLevel=ERROR',
    ...(t.privateKeyPath ? ['-i', t.privateKeyPath] : []),
    '-p',
    String(t.port),
    `${t.username}@${t.host}`,
  ];
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export class SshCommandRunner implements RemoteRunner {
  /** Every command run, for tests that count effects. */
  readonly log: string[] = [];

  run(target: SshTarget, command: string, opts: RunOptions = {}): Promise<CommandResult> {
    this.log.push(command);
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const child = spawn('ssh', [...sshArgs(target), '--', command], { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => err.push(c));
      const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
      opts.signal?.addEventListener('abort', () => child.kill('SIGKILL'), { once: true });
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        const stderr = Buffer.concat(err).toString('utf8');
        // 255 is also a remote command's own exit code (nova-status uses it); only ssh's
        // complaints on stderr mark a connection failure.
        if (
          code === 255 &&
          /^(ssh: |kex_|Connection (refused|closed|reset)|Permission denied|Host key verification)/m.test(stderr)
        )
          return reject(new Error(`ssh to ${target.node} failed: ${stderr.trim()}`));
        resolve({
          node: target.node,
          command,
          exitCode: code,
          ...(signal ? { signal } : {}),
          durationMs: Date.now() - started,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr,
        });
      });
      child.stdin.end(opts.stdin ?? '');
    });
  }

  async runDetached(target: SshTarget, opts: DetachedOptions): Promise<CommandResult> {
    const started = Date.now();
    const dir = `${opts.stateDir.replace(/^\$HOME/, '"$HOME"')}/${q(opts.key.replace(/[^A-Za-z0-9_.-]/g, '_'))}`;
    const start = [
      `d=${dir}`,
      'mkdir -p "$d"',
      'if [ -e "$d/rc" ]; then echo reattached; exit 0; fi',
      'if [ -e "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null; then echo reattached; exit 0; fi',
      'cat > "$d/cmd"',
      `setsid nohup sh -c 'sh "$1/cmd" > "$1/out" 2> "$1/err"; echo $? > "$1/rc.tmp"; mv "$1/rc.tmp" "$1/rc"' _ "$d" </dev/null >/dev/null 2>&1 &`,
      'echo $! > "$d/pid"',
      'echo started',
    ].join('\n');
    const s = await this.run(target, start, { stdin: opts.command });
    if (s.exitCode !== 0) throw new Error(`could not start \`${opts.command}\` on ${target.node}: ${s.stderr}`);
    const reattached = s.stdout.trim() === 'reattached';
    const deadline = opts.timeoutMs ? started + opts.timeoutMs : Infinity;
    for (;;) {
      const p = await this.run(
        target,
        `d=${dir}; cat "$d/rc" 2>/dev/null; echo '--tail--'; tail -c 4000 "$d/out" 2>/dev/null`,
      );
      const [rc, tail = ''] = p.stdout.split('--tail--\n');
      opts.onProgress?.(tail);
      if (rc && rc.trim() !== '') {
        const f = await this.run(target, `d=${dir}; cat "$d/out"; printf '\\0'; cat "$d/err"`);
        const [stdout = '', stderr = ''] = f.stdout.split('\0');
        return {
          node: target.node,
          command: opts.command,
          exitCode: Number(rc.trim()),
          durationMs: Date.now() - started,
          stdout,
          stderr,
          ...(reattached ? { reattached } : {}),
        };
      }
      if (Date.now() > deadline)
        throw new Error(`\`${opts.command}\` on ${target.node} did not finish within ${opts.timeoutMs} ms`);
      if (opts.signal?.aborted) throw opts.signal.reason;
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
    }
  }
}
