// Which keys a login offers, in ssh(1)'s order: keys the agent holds (those named by
// IdentityFile first in the agent's own order, then the agent's others unless IdentitiesOnly),
// then key files the agent does not hold. A file protected by a passphrase is usable only
// through an agent that holds it; where ssh would ask for the passphrase, we refuse instead.
import { existsSync, readFileSync } from 'node:fs';
import {
  BaseAgent,
  OpenSSHAgent,
  utils,
  type IdentityCallback,
  type ParsedKey,
  type SignCallback,
  type SigningRequestOptions,
} from 'ssh2';
import { fingerprint } from './knownHosts';

export interface IdentityFile {
  path: string;
  /** The public key blob, from the key file itself or its `.pub`; undefined if neither tells. */
  publicBlob?: Buffer;
  /** Set when the file holds a usable private key without a passphrase. */
  privateKey?: ParsedKey;
  encrypted: boolean;
  /** Why the file cannot be used (missing, unreadable, malformed); undefined if it can. */
  problem?: string;
}

/** The public half an OpenSSH private key file stores unencrypted, even when the rest is not. */
function opensshPublicBlob(text: string): Buffer | undefined {
  const m = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
  if (!m) return undefined;
  const data = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  const magic = Buffer.from('openssh-key-v1\0', 'latin1');
  if (!data.subarray(0, magic.length).equals(magic)) return undefined;
  let pos = magic.length;
  const str = () => {
    const len = data.readUInt32BE(pos);
    const v = data.subarray(pos + 4, pos + 4 + len);
    pos += 4 + len;
    return v;
  };
  try {
    str(); // cipher
    str(); // kdf
    str(); // kdf options
    const n = data.readUInt32BE(pos);
    pos += 4;
    return n >= 1 ? Buffer.from(str()) : undefined;
  } catch {
    return undefined;
  }
}

function pubFileBlob(path: string): Buffer | undefined {
  try {
    const [, b64] = readFileSync(`${path}.pub`, 'utf8').trim().split(/\s+/);
    const blob = b64 ? Buffer.from(b64, 'base64') : undefined;
    return blob && blob.length > 0 ? blob : undefined;
  } catch {
    return undefined;
  }
}

export function loadIdentityFile(path: string): IdentityFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ssh(1) also uses a key the agent holds when only its .pub is on disk.
    const publicBlob = pubFileBlob(path);
    return {
      path,
      encrypted: false,
      ...(publicBlob ? { publicBlob } : {}),
      problem: code === 'ENOENT' ? 'no such file' : `cannot read it (${code ?? (err as Error).message})`,
    };
  }
  const parsed = utils.parseKey(text);
  if (parsed instanceof Error) {
    const encrypted = /passphrase/i.test(parsed.message) || /ENCRYPTED/.test(text);
    const publicBlob = opensshPublicBlob(text) ?? pubFileBlob(path);
    return {
      path,
      encrypted,
      ...(publicBlob ? { publicBlob } : {}),
      ...(encrypted ? {} : { problem: parsed.message }),
    };
  }
  const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed;
  if (!key.isPrivateKey()) {
    // A public key named as IdentityFile selects the matching agent key.
    return { path, encrypted: false, publicBlob: key.getPublicSSH(), problem: 'it holds a public key only' };
  }
  return { path, encrypted: false, privateKey: key, publicBlob: key.getPublicSSH() };
}

export interface AgentKeys {
  socket: string;
  keys: ParsedKey[];
  agent: OpenSSHAgent;
}

export type AgentState =
  { kind: 'none' } | { kind: 'unreachable'; socket: string; reason: string } | ({ kind: 'ok' } & AgentKeys);

export function listAgentKeys(socket: string | undefined, timeoutMs = 5000): Promise<AgentState> {
  if (!socket) return Promise.resolve({ kind: 'none' });
  if (!existsSync(socket)) return Promise.resolve({ kind: 'unreachable', socket, reason: 'no such socket' });
  const agent = new OpenSSHAgent(socket);
  return new Promise((resolve) => {
    const timer = setTimeout(
      () => resolve({ kind: 'unreachable', socket, reason: `no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    agent.getIdentities((err, keys) => {
      clearTimeout(timer);
      if (err || !keys) return resolve({ kind: 'unreachable', socket, reason: err?.message ?? 'no keys' });
      // OpenSSHAgent answers with parsed keys; anything else is not a key we can offer.
      const parsed = keys.filter((k): k is ParsedKey => typeof k === 'object' && 'getPublicSSH' in k);
      resolve({ kind: 'ok', socket, agent, keys: parsed });
    });
  });
}

/** An agent limited to one of its keys, so each login attempt names exactly one key. */
class OneKeyAgent extends BaseAgent<ParsedKey> {
  constructor(
    private readonly inner: OpenSSHAgent,
    private readonly key: ParsedKey,
  ) {
    super();
  }
  getIdentities(cb: IdentityCallback<ParsedKey>): void {
    cb(undefined, [this.key]);
  }
  sign(pubKey: ParsedKey, data: Buffer, options: SigningRequestOptions | SignCallback, cb?: SignCallback): void {
    const done = typeof options === 'function' ? options : cb;
    const opts = typeof options === 'function' ? {} : options;
    this.inner.sign(pubKey, data, opts, (err, sig) => done?.(err, sig));
  }
}

export type LoginMethod =
  | { kind: 'agent'; label: string; agent: BaseAgent }
  | { kind: 'file'; label: string; key: ParsedKey }
  /** ssh would stop here to ask for a passphrase; we refuse. */
  | { kind: 'needs-passphrase'; label: string; path: string };

export interface LoginPlan {
  methods: LoginMethod[];
  /** Named files that cannot be used, with why: they go into the refusal if no key works. */
  skipped: string[];
}

function describeKey(blob: Buffer): string {
  return fingerprint(blob);
}

export function planLogin(files: IdentityFile[], agent: AgentState, identitiesOnly: boolean): LoginPlan {
  const methods: LoginMethod[] = [];
  const used = new Set<IdentityFile>();
  if (agent.kind === 'ok') {
    for (const key of agent.keys) {
      const blob = key.getPublicSSH();
      const file = files.find((f) => !used.has(f) && f.publicBlob?.equals(blob));
      if (file) used.add(file);
      else if (identitiesOnly) continue;
      const label = file
        ? `${file.path} (held by the agent)`
        : `agent key ${key.comment ? `"${key.comment}" ` : ''}${describeKey(blob)}`;
      methods.push({ kind: 'agent', label, agent: new OneKeyAgent(agent.agent, key) });
    }
  }
  const skipped: string[] = [];
  for (const f of files) {
    if (used.has(f)) continue;
    if (f.privateKey) methods.push({ kind: 'file', label: f.path, key: f.privateKey });
    else if (f.encrypted) methods.push({ kind: 'needs-passphrase', label: f.path, path: f.path });
    else if (f.problem) skipped.push(`${f.path}: ${f.problem}`);
  }
  return { methods, skipped };
}
