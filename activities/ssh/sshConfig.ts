// The OpenSSH client configuration, read the way ssh(1) reads it (ssh_config(5)): the first
// obtained value of each keyword wins, IdentityFile accumulates, Host patterns match the name
// given to ssh (case-sensitively, `!` negates), Match tests what is known so far, Include is
// conditional on the block it sits in. Keywords that do not change where or how we connect are
// ignored; those that would weaken host-key checking or run commands are refused.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { hostname as localHostname, homedir, userInfo } from 'node:os';
import { isAbsolute, join } from 'node:path';

/** A problem in an ssh config, with the file and line it comes from. */
export class SshConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SshConfigError';
  }
}

interface Directive {
  file: string;
  line: number;
  /** Lower case, as keywords are case-insensitive. */
  keyword: string;
  args: string[];
}

export interface ConfigSource {
  path: string;
  /** Relative Include paths resolve against ~/.ssh for user files and /etc/ssh for system ones. */
  kind: 'user' | 'system';
  /** A file named by the inventory must exist; ssh's default files may be absent. */
  required: boolean;
}

export interface LocalContext {
  home: string;
  localUser: string;
  uid: number;
  env: NodeJS.ProcessEnv;
}

export function localContext(env: NodeJS.ProcessEnv = process.env): LocalContext {
  const info = userInfo();
  return { home: env.HOME || homedir(), localUser: info.username, uid: info.uid, env };
}

/**
 * Which files ssh reads: `undefined` is ssh's default (~/.ssh/config, then /etc/ssh/ssh_config),
 * `none` reads nothing, any other value is one file read alone, as `ssh -F FILE` does.
 */
export function configSources(config: string | undefined, ctx: LocalContext): ConfigSource[] {
  if (config === 'none') return [];
  if (config === undefined) {
    return [
      { path: join(ctx.home, '.ssh', 'config'), kind: 'user', required: false },
      { path: '/etc/ssh/ssh_config', kind: 'system', required: false },
    ];
  }
  return [{ path: expandTilde(config, ctx), kind: 'user', required: true }];
}

// ---------------------------------------------------------------------------------------------
// Lexing: keyword, optional "=", arguments split on whitespace with double or single quotes;
// "#" outside quotes starts a comment (OpenSSH 9.2 accepts it at the end of a line).

function splitArgs(text: string, where: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length || text[i] === '#') break;
    let arg = '';
    let quoted = false;
    while (i < text.length && !/\s/.test(text[i]!)) {
      const c = text[i]!;
      if (c === '"' || c === "'") {
        const end = text.indexOf(c, i + 1);
        if (end < 0) throw new SshConfigError(`${where}: unterminated quote`);
        arg += text.slice(i + 1, end);
        quoted = true;
        i = end + 1;
      } else if (c === '\\' && i + 1 < text.length && /["'\\\s]/.test(text[i + 1]!)) {
        arg += text[i + 1];
        i += 2;
      } else {
        arg += c;
        i++;
      }
    }
    if (arg || quoted) args.push(arg);
  }
  return args;
}

function lexLine(raw: string, file: string, line: number): Directive | undefined {
  const text = raw.replace(/^[\s\uFEFF]+|\s+$/g, '');
  if (!text || text.startsWith('#')) return undefined;
  const m = /^([^\s=]+)\s*(?:=\s*)?(.*)$/.exec(text);
  if (!m) return undefined;
  const where = `${file} line ${line}`;
  return { file, line, keyword: m[1]!.toLowerCase(), args: splitArgs(m[2]!, where) };
}

// ---------------------------------------------------------------------------------------------
// Patterns: `*` and `?` wildcards, matched case-sensitively as ssh matches Host lines.

function globMatch(text: string, pattern: string, ignoreCase = false): boolean {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, ignoreCase ? 'is' : 's').test(text);
}

/** A comma-separated pattern list: some pattern matches and no negated one does. */
export function matchPatternList(text: string, list: string, ignoreCase = false): boolean {
  let positive = false;
  for (const p of list.split(',')) {
    if (!p) continue;
    if (p.startsWith('!')) {
      if (globMatch(text, p.slice(1), ignoreCase)) return false;
    } else if (globMatch(text, p, ignoreCase)) positive = true;
  }
  return positive;
}

/** A Host line: whitespace-separated single patterns; a matching negated one vetoes the block. */
function hostLineMatches(host: string, patterns: string[]): boolean {
  let positive = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (globMatch(host, p.slice(1))) return false;
    } else if (globMatch(host, p)) positive = true;
  }
  return positive;
}

// ---------------------------------------------------------------------------------------------
// Expansion of ~, ${VAR} and %-tokens, for the keywords ssh_config(5) says accept them.

export function expandTilde(path: string, ctx: Pick<LocalContext, 'home'>): string {
  if (path === '~') return ctx.home;
  if (path.startsWith('~/')) return join(ctx.home, path.slice(2));
  const m = /^~([^/]+)(\/.*)?$/.exec(path);
  if (m) {
    const home = passwdHome(m[1]!);
    if (!home) throw new SshConfigError(`unknown user "${m[1]}" in "${path}"`);
    return join(home, m[2] ?? '');
  }
  return path;
}

function passwdHome(user: string): string | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === user) return f[5];
    }
  } catch {
    // No passwd file: the user is unknown.
  }
  return undefined;
}

function expandEnv(value: string, ctx: LocalContext, where: string): string {
  return value.replace(/\$\{([^}]*)\}/g, (_, name: string) => {
    const v = ctx.env[name];
    if (v === undefined) throw new SshConfigError(`${where}: environment variable \${${name}} is not set`);
    return v;
  });
}

export type Tokens = Record<string, string>;

function expandTokens(value: string, tokens: Tokens, allowed: string, where: string): string {
  return value.replace(/%(.)/g, (_, t: string) => {
    if (t === '%') return '%';
    if (!allowed.includes(t) || tokens[t] === undefined) throw new SshConfigError(`${where}: unknown token %${t}`);
    return tokens[t]!;
  });
}

// The tokens of IdentityFile, UserKnownHostsFile, IdentityAgent (ssh_config(5), TOKENS).
const PATH_TOKENS = 'CdhikLlnpru';

// ---------------------------------------------------------------------------------------------
// Reading files, following Include.

// Keywords that take exactly one argument; more is an error in ssh too ("extra arguments").
const SINGLE_ARG = new Set([
  'hostname',
  'user',
  'port',
  'identityfile',
  'identitiesonly',
  'identityagent',
  'proxyjump',
  'stricthostkeychecking',
  'hostkeyalias',
  'connecttimeout',
  'batchmode',
]);

function readDirectives(source: ConfigSource): Directive[] | undefined {
  let text: string;
  try {
    text = readFileSync(source.path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!source.required && code === 'ENOENT') return undefined;
    throw new SshConfigError(`cannot read ssh config ${source.path}: ${code ?? (err as Error).message}`);
  }
  const out: Directive[] = [];
  text.split('\n').forEach((raw, i) => {
    const d = lexLine(raw, source.path, i + 1);
    if (!d) return;
    if (d.args.length === 0 && d.keyword !== 'match')
      throw new SshConfigError(`${source.path} line ${i + 1}: ${d.keyword} has no argument`);
    if (SINGLE_ARG.has(d.keyword) && d.args.length > 1)
      throw new SshConfigError(`${source.path} line ${i + 1}: ${d.keyword} takes one argument, found ${d.args.length}`);
    out.push(d);
  });
  return out;
}

/** Glob for Include: `*`, `?` in the last component and in directories, in lexical order. */
function globFiles(pattern: string): string[] {
  if (!/[*?[]/.test(pattern)) return existsSync(pattern) ? [pattern] : [];
  const parts = pattern.split('/');
  let paths = [pattern.startsWith('/') ? '/' : '.'];
  for (const part of parts) {
    if (part === '') continue;
    const next: string[] = [];
    for (const base of paths) {
      if (!/[*?[]/.test(part)) {
        const p = join(base, part);
        if (existsSync(p)) next.push(p);
        continue;
      }
      let entries: string[];
      try {
        entries = readdirSync(base).sort();
      } catch {
        continue;
      }
      for (const e of entries) if (!e.startsWith('.') && globMatch(e, part)) next.push(join(base, e));
    }
    paths = next;
  }
  return paths.filter((p) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Resolution.

/** What the inventory says itself: like ssh's command line, it beats every config file. */
export interface CommandLine {
  /** The name given to ssh: a Host alias, a host name or an address. */
  host: string;
  user?: string;
  port?: number;
  identityFiles?: string[];
  userKnownHostsFiles?: string[];
}

/** One value and where it was set, so refusals can point at the line. */
interface Setting<T> {
  value: T;
  from: string;
}

/** The raw settings for one host, before defaults and token expansion. */
interface Obtained {
  hostname?: Setting<string>;
  user?: Setting<string>;
  port?: Setting<string>;
  identityFiles: Setting<string>[];
  identitiesOnly?: Setting<string>;
  identityAgent?: Setting<string>;
  /** ProxyJump and ProxyCommand compete: the first one obtained wins. */
  proxy?: Setting<{ kind: 'jump' | 'command'; value: string }>;
  userKnownHostsFile?: Setting<string[]>;
  globalKnownHostsFile?: Setting<string[]>;
  strictHostKeyChecking?: Setting<string>;
  hostKeyAlias?: Setting<string>;
}

export interface HostConfig {
  /** The name given to ssh. */
  originalHost: string;
  hostname: string;
  user: string;
  port: number;
  /** Identity files in the order ssh tries them; `explicit` says whether the config or inventory named them. */
  identityFiles: string[];
  identityFilesExplicit: boolean;
  identitiesOnly: boolean;
  /** Agent socket path; undefined when no agent is to be used. */
  agentSocket: string | undefined;
  /** Jump hosts in visiting order, as written (`[user@]host[:port]` or ssh:// URIs). */
  proxyJump: string[];
  userKnownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  /** The name looked up in known_hosts and checked against certificate principals. */
  hostKeyAlias: string | undefined;
  /** Where each setting came from ("file line N"), for messages. */
  sources: Record<string, string>;
}

export interface ResolveOptions {
  /** Used when neither the inventory nor the config names a user (ssh would use the local user). */
  defaultUser: string;
  /** Used when neither names a port. */
  defaultPort: number;
}

const DEFAULT_IDENTITIES = ['id_rsa', 'id_ecdsa', 'id_ecdsa_sk', 'id_ed25519', 'id_ed25519_sk', 'id_xmss', 'id_dsa'];

function refuse(where: string, message: string): never {
  throw new SshConfigError(`${where}: ${message}`);
}

class Evaluator {
  readonly got: Obtained = { identityFiles: [] };

  constructor(
    private readonly cl: CommandLine,
    private readonly ctx: LocalContext,
    private readonly opts: ResolveOptions,
  ) {}

  run(sources: ConfigSource[]): void {
    for (const source of sources) {
      const directives = readDirectives(source);
      if (directives) this.apply(directives, source.kind, true, 0);
    }
  }

  private currentHostname(): string {
    const h = this.got.hostname;
    return h ? expandTokens(h.value, { h: this.cl.host }, 'h', h.from) : this.cl.host;
  }

  private currentUser(): string {
    return this.cl.user ?? this.got.user?.value ?? this.opts.defaultUser;
  }

  private matchLine(d: Directive, where: string): boolean {
    const args = d.args;
    if (args.length === 0) refuse(where, 'Match needs criteria');
    let i = 0;
    while (i < args.length) {
      let crit = args[i]!.toLowerCase();
      const negate = crit.startsWith('!');
      if (negate) crit = crit.slice(1);
      if (crit === 'all') {
        i++;
        if (negate) return false;
        continue;
      }
      if (crit === 'canonical' || crit === 'final') {
        // Only true on a second pass that nova-upgrade never makes; ssh makes `final` true then.
        refuse(
          where,
          `Match ${crit} is not supported: nova-upgrade reads the config in one pass, without hostname canonicalization`,
        );
      }
      const arg = args[i + 1];
      if (arg === undefined) refuse(where, `Match ${crit} needs an argument`);
      i += 2;
      let result: boolean;
      switch (crit) {
        case 'host':
          result = matchPatternList(this.currentHostname(), arg);
          break;
        case 'originalhost':
          result = matchPatternList(this.cl.host, arg);
          break;
        case 'user':
          result = matchPatternList(this.currentUser(), arg);
          break;
        case 'localuser':
          result = matchPatternList(this.ctx.localUser, arg);
          break;
        case 'exec':
          refuse(
            where,
            'Match exec is not supported: nova-upgrade does not run commands from an ssh config to decide how to connect',
          );

        default:
          refuse(
            where,
            `Match ${crit} is not a criterion nova-upgrade knows (all, host, originalhost, user, localuser)`,
          );
      }
      if (negate) result = !result;
      // ssh stops evaluating a Match line at its first false criterion.
      if (!result) return false;
    }
    return true;
  }

  private first<K extends keyof Obtained>(key: K, value: NonNullable<Obtained[K]>): void {
    if (this.got[key] === undefined) this.got[key] = value;
  }

  private apply(directives: Directive[], kind: ConfigSource['kind'], startActive: boolean, depth: number): void {
    let active = startActive;
    const canMatch = startActive;
    for (const d of directives) {
      const where = `${d.file} line ${d.line}`;
      const one = d.args[0]!;
      switch (d.keyword) {
        case 'host':
          active = canMatch && hostLineMatches(this.cl.host, d.args);
          continue;
        case 'match':
          active = canMatch && this.matchLine(d, where);
          continue;
      }
      if (!active) continue;
      switch (d.keyword) {
        case 'include':
          if (depth >= 16) refuse(where, 'Include nested too deeply (16 levels)');
          for (const arg of d.args) {
            let pattern = kind === 'user' ? expandTilde(arg, this.ctx) : arg;
            if (!isAbsolute(pattern))
              pattern = kind === 'user' ? join(this.ctx.home, '.ssh', pattern) : join('/etc/ssh', pattern);
            for (const file of globFiles(pattern)) {
              const included = readDirectives({ path: file, kind, required: true });
              // An included file starts in the including block's state; its Host lines rule
              // only inside it, and the including block's state resumes after it.
              if (included) this.apply(included, kind, true, depth + 1);
            }
          }
          break;
        case 'hostname':
          this.first('hostname', { value: one, from: where });
          break;
        case 'user':
          this.first('user', { value: one, from: where });
          break;
        case 'port':
          if (!/^\d+$/.test(one) || Number(one) < 1 || Number(one) > 65535)
            refuse(where, `Port "${one}" is not a TCP port, 1 to 65535`);
          this.first('port', { value: one, from: where });
          break;
        case 'identityfile':
          this.got.identityFiles.push({ value: one, from: where });
          break;
        case 'identitiesonly':
          this.first('identitiesOnly', { value: one.toLowerCase(), from: where });
          break;
        case 'identityagent':
          this.first('identityAgent', { value: one, from: where });
          break;
        case 'proxyjump':
          this.first('proxy', { value: { kind: 'jump', value: one }, from: where });
          break;
        case 'proxycommand':
          this.first('proxy', { value: { kind: 'command', value: d.args.join(' ') }, from: where });
          break;
        case 'userknownhostsfile':
          this.first('userKnownHostsFile', { value: d.args, from: where });
          break;
        case 'globalknownhostsfile':
          this.first('globalKnownHostsFile', { value: d.args, from: where });
          break;
        case 'stricthostkeychecking':
          this.first('strictHostKeyChecking', { value: one.toLowerCase(), from: where });
          break;
        case 'hostkeyalias':
          this.first('hostKeyAlias', { value: one, from: where });
          break;
        default:
          // Ciphers, forwarding, logging and the like do not change which host we reach or
          // how its key is checked; ssh2 keeps its own algorithm choices.
          break;
      }
    }
  }
}

/** Resolves what ssh would use to reach `cl.host`, reading `sources` in order. */
export function resolveHostConfig(
  cl: CommandLine,
  sources: ConfigSource[],
  opts: ResolveOptions,
  ctx: LocalContext = localContext(),
): HostConfig {
  const ev = new Evaluator(cl, ctx, opts);
  ev.run(sources);
  const got = ev.got;
  const sources_: Record<string, string> = {};

  const strict = got.strictHostKeyChecking;
  if (strict && ['no', 'off', 'false'].includes(strict.value)) {
    refuse(
      strict.from,
      `StrictHostKeyChecking ${strict.value} applies to ${cl.host}, but nova-upgrade always checks host keys against known_hosts: ` +
        'remove the setting for this host, or add its key with ssh-keyscan after checking its fingerprint',
    );
  }
  // ask and accept-new would prompt or write known_hosts; nova-upgrade does neither and refuses
  // unknown keys, as yes does.
  if (strict && !['yes', 'true', 'ask', 'accept-new'].includes(strict.value))
    refuse(strict.from, `StrictHostKeyChecking "${strict.value}" is not yes, ask, accept-new or no`);
  if (got.proxy?.value.kind === 'command' && got.proxy.value.value.toLowerCase() !== 'none') {
    refuse(
      got.proxy.from,
      `ProxyCommand applies to ${cl.host}; nova-upgrade connects through jump hosts itself: write the bastion as ProxyJump [user@]host[:port] instead`,
    );
  }

  const hostnameRaw = got.hostname ? expandTokens(got.hostname.value, { h: cl.host }, 'h', got.hostname.from) : cl.host;
  // ssh lower-cases the host name it connects to and looks up.
  const hostname = hostnameRaw.toLowerCase();
  if (got.hostname) sources_.hostname = got.hostname.from;
  const user = cl.user ?? got.user?.value ?? opts.defaultUser;
  if (!cl.user && got.user) sources_.user = got.user.from;
  const port = cl.port ?? (got.port ? Number(got.port.value) : opts.defaultPort);
  if (cl.port === undefined && got.port) sources_.port = got.port.from;
  const hostKeyAlias = got.hostKeyAlias?.value.toLowerCase();

  const tokens: Tokens = {
    d: ctx.home,
    h: hostname,
    i: String(ctx.uid),
    k: hostKeyAlias ?? cl.host,
    L: localHostname().split('.')[0]!,
    l: localHostname(),
    n: cl.host,
    p: String(port),
    r: user,
    u: ctx.localUser,
  };
  tokens.C = createHash('sha1').update(`${tokens.l}${tokens.h}${tokens.p}${tokens.r}`).digest('hex');
  const pathOf = (value: string, from: string) =>
    expandTokens(expandEnv(expandTilde(value, ctx), ctx, from), tokens, PATH_TOKENS, from);

  // The inventory's keys come first, as ssh's -i does; with no key named anywhere, ssh's defaults.
  const named = [
    ...(cl.identityFiles ?? []).map((f) => expandTilde(f, ctx)),
    ...got.identityFiles.map((s) => pathOf(s.value, s.from)),
  ];
  const identityFilesExplicit = named.length > 0;
  const identityFiles = identityFilesExplicit
    ? [...new Set(named)]
    : DEFAULT_IDENTITIES.map((f) => join(ctx.home, '.ssh', f));

  const io = got.identitiesOnly?.value;
  if (io !== undefined && io !== 'yes' && io !== 'no')
    refuse(got.identitiesOnly!.from, `IdentitiesOnly "${io}" is not yes or no`);

  let agentSocket: string | undefined = ctx.env.SSH_AUTH_SOCK || undefined;
  if (got.identityAgent) {
    const v = got.identityAgent.value;
    if (v === 'none') agentSocket = undefined;
    else if (v === 'SSH_AUTH_SOCK') agentSocket = ctx.env.SSH_AUTH_SOCK || undefined;
    else if (v.startsWith('$') && !v.startsWith('${')) agentSocket = ctx.env[v.slice(1)] || undefined;
    else agentSocket = pathOf(v, got.identityAgent.from);
    sources_.identityAgent = got.identityAgent.from;
  }

  let proxyJump: string[] = [];
  if (got.proxy?.value.kind === 'jump' && got.proxy.value.value.toLowerCase() !== 'none') {
    const from = got.proxy.from;
    proxyJump = expandTokens(got.proxy.value.value, { h: hostname, n: cl.host, p: String(port), r: user }, 'hnpr', from)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    sources_.proxyJump = from;
  }

  const userKnownHostsFiles =
    cl.userKnownHostsFiles?.map((f) => expandTilde(f, ctx)) ??
    (got.userKnownHostsFile
      ? got.userKnownHostsFile.value[0]?.toLowerCase() === 'none'
        ? []
        : got.userKnownHostsFile.value.map((f) => pathOf(f, got.userKnownHostsFile!.from))
      : [join(ctx.home, '.ssh', 'known_hosts'), join(ctx.home, '.ssh', 'known_hosts2')]);
  if (!cl.userKnownHostsFiles && got.userKnownHostsFile) sources_.userKnownHostsFile = got.userKnownHostsFile.from;
  const globalKnownHostsFiles = got.globalKnownHostsFile
    ? got.globalKnownHostsFile.value[0]?.toLowerCase() === 'none'
      ? []
      : got.globalKnownHostsFile.value.map((f) => expandTilde(f, ctx))
    : ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'];

  return {
    originalHost: cl.host,
    hostname,
    user,
    port,
    identityFiles,
    identityFilesExplicit,
    identitiesOnly: io === 'yes',
    agentSocket,
    proxyJump,
    userKnownHostsFiles,
    globalKnownHostsFiles,
    hostKeyAlias,
    sources: sources_,
  };
}

/** One ProxyJump entry: `[user@]host[:port]`, `[user@][v6addr]:port` or `ssh://[user@]host[:port]`. */
export function parseJump(spec: string, from: string): { host: string; user?: string; port?: number } {
  let s = spec;
  if (s.startsWith('ssh://')) s = s.slice(6).replace(/\/$/, '');
  let user: string | undefined;
  const at = s.lastIndexOf('@');
  if (at >= 0) {
    user = s.slice(0, at);
    s = s.slice(at + 1);
  }
  let host = s;
  let port: number | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) {
    host = v6[1]!;
    if (v6[2]) port = Number(v6[2]);
  } else {
    const m = /^([^:]+):(\d+)$/.exec(s);
    if (m) {
      host = m[1]!;
      port = Number(m[2]);
    } else if (s.includes(':') && (s.match(/:/g) ?? []).length === 1) {
      refuse(from, `ProxyJump "${spec}" has a port that is not a number`);
    }
  }
  if (!host || (user !== undefined && !user)) refuse(from, `ProxyJump "${spec}" is not [user@]host[:port]`);
  if (port !== undefined && (port < 1 || port > 65535))
    refuse(from, `ProxyJump "${spec}" has a port outside 1 to 65535`);
  return { host, ...(user ? { user } : {}), ...(port ? { port } : {}) };
}
