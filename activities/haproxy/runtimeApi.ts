// One client for HAProxy's runtime API (the stats socket) over the three ways an inventory can
// reach it: `socat` over SSH on the LB node (the seed's way), a local unix socket, a TCP socket.
//
// Batching. Commands separated by `;` run in one connection, and HAProxy writes their answers
// back to back. Almost every answer ends in a blank line, but measured on 2.6.12 the weight
// format errors do not:
//   "set server B/S weight x;set server B/S weight 0;set server B/S weight 37"
//   -> "Empty weight string empty or preceded by garbage\n" + "\n" + "\n"
// Split on blank lines, the first answer swallows the second's and the third gets none, so a
// failed command would read as a success. Every command here is therefore followed by the
// marker `show cli level`, whose answer is exactly "admin\n\n" / "operator\n\n" / "user\n\n" at
// every level, starts a line whatever came before it, and changes nothing. An answer is the text
// up to its marker, and the marker tells which level the socket grants as a bonus.
import { createConnection, type Socket } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { HAPROXY_NAME, type LbSocket } from '../../inventory/schema';
import { drainSetting, type DrainMode, type LbTarget } from '../../common/haproxy';
import { shellQuote } from '../../inventory/commands';
import type { RemoteRunner } from '../ssh/types';

export type CliLevel = 'admin' | 'operator' | 'user';

/** A runtime command and what it acts on, so a failure can name the backend and server. */
export interface RuntimeCommand {
  text: string;
  backend?: string;
  server?: string;
}

export interface Answer {
  command: RuntimeCommand;
  text: string;
}

export interface BatchResult {
  answers: Answer[];
  level: CliLevel;
}

const MARKER = 'show cli level';
const MARKER_ANSWER = /(admin|operator|user)\n\n/g;

export function describeSocket(s: LbSocket): string {
  switch (s.via) {
    case 'ssh':
      return `socket ${s.path} (socat over ssh${s.sudo ? ', sudo' : ''})`;
    case 'unix':
      return `unix socket ${s.path}`;
    case 'tcp':
      return `tcp socket ${s.host}:${s.port}`;
  }
}

function invalidName(what: string, value: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'HaproxyInvalidName',
    message: `${what} name ${JSON.stringify(value)} is not a valid HAProxy name (letters, digits, '-', '_', '.', ':'); nothing was sent`,
    nonRetryable: true,
  });
}

/** `;` and newlines end a runtime command: an unchecked name could smuggle in a second one. */
export function checkName(what: 'backend' | 'server', value: string): string {
  if (typeof value !== 'string' || !HAPROXY_NAME.test(value)) throw invalidName(what, String(value));
  return value;
}

const target = (backend: string, server: string) => `${checkName('backend', backend)}/${checkName('server', server)}`;

export const commands = {
  showStat: (backend: string): RuntimeCommand => ({ text: `show stat ${checkName('backend', backend)} 4 -1`, backend }),
  showServersState: (backend: string): RuntimeCommand => ({
    text: `show servers state ${checkName('backend', backend)}`,
    backend,
  }),
  setState: (backend: string, server: string, state: 'ready' | 'drain' | 'maint'): RuntimeCommand => ({
    text: `set server ${target(backend, server)} state ${state}`,
    backend,
    server,
  }),
  setWeight: (backend: string, server: string, weight: number): RuntimeCommand => {
    if (!Number.isInteger(weight) || weight < 0 || weight > 256) {
      throw ApplicationFailure.create({
        type: 'HaproxyBadWeight',
        message: `weight ${weight} for ${backend}/${server} is not an integer 0..256; nothing was sent`,
        nonRetryable: true,
      });
    }
    return { text: `set server ${target(backend, server)} weight ${weight}`, backend, server };
  },
  /** The drain of the inventory's haproxy.drainMode; `--dry-run` shows the same words. */
  drain: (backend: string, server: string, mode: DrainMode): RuntimeCommand => ({
    text: `set server ${target(backend, server)} ${drainSetting(mode)}`,
    backend,
    server,
  }),
  shutdownSessions: (backend: string, server: string): RuntimeCommand => ({
    text: `shutdown sessions server ${target(backend, server)}`,
    backend,
    server,
  }),
};

// Errors HAProxy 2.6 reports as answer text (socat and the socket itself "succeed").
const ERRORS: Array<[RegExp, string]> = [
  [/^No such server\./, 'HaproxyNoSuchServer'],
  [/^(No such backend\.|No such proxy\.|Can't find backend\.)/, 'HaproxyNoSuchBackend'],
  [/^Permission denied/, 'HaproxyPermissionDenied'],
  [/^Require 'backend\/server'\./, 'HaproxyBadServerSpec'],
  [
    /^(Require <weight>|Absolute weight|Relative weight|Empty weight string|Trailing garbage in weight string)/,
    'HaproxyBadWeight',
  ],
  [/^'set server <srv> state' expects/, 'HaproxyBadState'],
  [/^Unknown command/, 'HaproxyUnknownCommand'],
];

export function classifyAnswer(text: string): string | undefined {
  return ERRORS.find(([re]) => re.test(text))?.[1];
}

/** Splits a marker-interleaved batch output into one answer per command. */
export function splitAnswers(output: string, count: number): { texts: string[]; level?: CliLevel } {
  const texts: string[] = [];
  let level: CliLevel | undefined;
  let pos = 0;
  while (texts.length < count) {
    MARKER_ANSWER.lastIndex = pos;
    let m: RegExpExecArray | null;
    // The marker answer always starts a line: an answer either ends in "\n" or is empty.
    while ((m = MARKER_ANSWER.exec(output)) && m.index !== pos && output[m.index - 1] !== '\n')
      MARKER_ANSWER.lastIndex = m.index + 1;
    if (!m) break;
    texts.push(output.slice(pos, m.index).replace(/\n+$/, ''));
    level = m[1] as CliLevel;
    pos = m.index + m[0].length;
  }
  return { texts, level };
}

export function batchPayload(cmds: RuntimeCommand[]): string {
  return `${cmds.flatMap((c) => [c.text, MARKER]).join(';')}\n`;
}

export interface RuntimeClientOptions {
  runner?: RemoteRunner;
  timeoutMs?: number;
  /** Sees every payload actually sent; tests use it to prove that nothing was. */
  onSend?: (lb: string, payload: string) => void;
}

export class HaproxyRuntime {
  constructor(
    readonly lb: LbTarget,
    private readonly opts: RuntimeClientOptions = {},
  ) {}

  private where(): string {
    return `LB ${this.lb.node} (${describeSocket(this.lb.socket)})`;
  }

  unreachable(cause: string): ApplicationFailure {
    return ApplicationFailure.create({
      type: 'HaproxyUnreachable',
      message: `cannot reach HAProxy on ${this.where()}: ${cause}`,
      nonRetryable: false,
      details: [{ lb: this.lb.node, socket: describeSocket(this.lb.socket) }],
    });
  }

  /**
   * Runs the commands in ONE connection and returns one answer per command. Any answer that is
   * an HAProxy error fails the whole batch with a non-retryable failure naming the LB, backend
   * and server. HAProxy does not stop at an error: every other command of the batch ran.
   */
  async execute(cmds: RuntimeCommand[]): Promise<BatchResult> {
    for (const c of cmds) {
      // Builders validate names already; this catches a hand-made RuntimeCommand too.
      if (/[;\n\r]/.test(c.text)) throw invalidName('command', c.text);
    }
    const payload = batchPayload(cmds);
    this.opts.onSend?.(this.lb.node, payload);
    const output = await this.send(payload);
    const { texts, level } = splitAnswers(output, cmds.length);
    if (texts.length !== cmds.length || !level) {
      throw ApplicationFailure.create({
        type: 'HaproxyUnreachable',
        message: `HAProxy on ${this.where()} answered ${texts.length} of ${cmds.length} command(s) before the connection ended: ${JSON.stringify(output.slice(-300))}`,
        nonRetryable: false,
      });
    }
    const answers = cmds.map((command, i) => ({ command, text: texts[i]! }));
    for (const a of answers) {
      const type = classifyAnswer(a.text);
      if (type) throw this.failure(type, a, level);
    }
    return { answers, level };
  }

  async one(cmd: RuntimeCommand): Promise<string> {
    return (await this.execute([cmd])).answers[0]!.text;
  }

  private failure(type: string, a: Answer, level: CliLevel): ApplicationFailure {
    const { backend, server } = a.command;
    const subject = server ? `server ${backend}/${server}` : backend ? `backend ${backend}` : 'HAProxy';
    const hint: Record<string, string> = {
      HaproxyNoSuchServer: `backend ${backend} has no server ${server}`,
      HaproxyNoSuchBackend: `there is no backend ${backend}`,
      HaproxyPermissionDenied: `the socket grants level ${level}; draining needs a stats socket at level admin`,
    };
    return ApplicationFailure.create({
      type,
      message: `HAProxy on ${this.where()} refused \`${a.command.text}\` for ${subject}: ${a.text.split('\n')[0]}${hint[type] ? ` (${hint[type]})` : ''}`,
      nonRetryable: true,
      details: [{ lb: this.lb.node, backend, server, command: a.command.text, answer: a.text.slice(0, 500), level }],
    });
  }

  private send(payload: string): Promise<string> {
    const s = this.lb.socket;
    switch (s.via) {
      case 'unix':
        return this.sendNet(payload, () => createConnection(s.path));
      case 'tcp':
        return this.sendNet(payload, () => createConnection({ host: s.host, port: s.port }));
      case 'ssh':
        return this.sendSsh(payload, s.path, s.sudo);
    }
  }

  private sendNet(payload: string, connect: () => Socket): Promise<string> {
    const timeoutMs = this.opts.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const sock = connect();
      const chunks: Buffer[] = [];
      let failed = false;
      const timer = setTimeout(() => {
        failed = true;
        sock.destroy();
        reject(this.unreachable(`no complete answer within ${timeoutMs} ms`));
      }, timeoutMs);
      // Non-interactive mode: HAProxy runs the line, answers and closes; a half-close is enough.
      sock.on('connect', () => sock.end(payload));
      sock.on('data', (d: Buffer) => chunks.push(d));
      sock.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (failed) return;
        failed = true;
        reject(this.unreachable(`${e.code ?? ''} ${e.message}`.trim()));
      });
      sock.on('close', () => {
        clearTimeout(timer);
        if (!failed) resolve(Buffer.concat(chunks).toString('utf8'));
      });
    });
  }

  private async sendSsh(payload: string, path: string, sudo: boolean): Promise<string> {
    const { runner } = this.opts;
    const ssh = this.lb.ssh;
    if (!runner || !ssh) {
      throw ApplicationFailure.create({
        type: 'HaproxyConfig',
        message: `LB ${this.lb.node} uses socket via ssh but no ssh target or runner was given`,
        nonRetryable: true,
      });
    }
    // -t: after stdin's EOF socat waits this long for HAProxy to finish answering (default 0.5 s).
    const command = `${sudo ? 'sudo -n ' : ''}socat -t 10 stdio ${shellQuote(`unix-connect:${path}`)}`;
    let r;
    try {
      r = await runner.run(ssh, command, { stdin: payload, timeoutMs: this.opts.timeoutMs ?? 30_000 });
    } catch (e) {
      if (e instanceof ApplicationFailure && e.nonRetryable) throw e;
      throw this.unreachable(`ssh: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (r.exitCode !== 0) {
      const err = r.stderr.trim().split('\n').slice(-3).join(' | ');
      if (/sudo: .*password/i.test(r.stderr)) {
        throw ApplicationFailure.create({
          type: 'HaproxySudoRefused',
          message: `on LB ${this.lb.node}, \`${command}\` needs a password for sudo: ${err}`,
          nonRetryable: true,
        });
      }
      throw this.unreachable(`\`${command}\` exited ${r.exitCode ?? r.signal}: ${err || '(no output)'}`);
    }
    return r.stdout;
  }
}
