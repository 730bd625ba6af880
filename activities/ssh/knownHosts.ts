// OpenSSH known_hosts, read the way ssh(1) reads it: ssh2 has no parser and, without a
// hostVerifier, trusts any key, so this is what stands between us and a spoofed node.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface KnownHostKey {
  /** The key type as written in the file, e.g. ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256. */
  type: string;
  /** The decoded public key blob; compare it with what the server presents. */
  blob: Buffer;
}

export interface KnownHostsLookup {
  /** Keys the host may present. */
  keys: KnownHostKey[];
  /** Keys that must be refused even if also listed in `keys`; a revoked CA signs nothing valid. */
  revoked: KnownHostKey[];
  /** `@cert-authority` keys: a host certificate they signed vouches for the host's key. */
  cas: KnownHostKey[];
}

export interface KnownHostsEntry {
  marker: 'revoked' | 'cert-authority' | undefined;
  matches: (hostPatternName: string) => boolean;
  key: KnownHostKey;
}

/** The name OpenSSH looks up: a bare host for port 22, `[host]:port` for any other. */
export function knownHostsName(host: string, port: number): string {
  const lower = host.toLowerCase();
  return port === 22 ? lower : `[${lower}]:${port}`;
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i');
}

function hashedMatcher(field: string): ((name: string) => boolean) | undefined {
  const parts = field.split('|');
  if (parts.length !== 4 || parts[1] !== '1') return undefined;
  const salt = Buffer.from(parts[2], 'base64');
  const expected = Buffer.from(parts[3], 'base64');
  if (salt.length === 0 || expected.length !== 20) return undefined;
  return (name) => timingSafeEqual(createHmac('sha1', salt).update(name).digest(), expected);
}

// A pattern list matches when some pattern matches and no negated (`!`) pattern does.
function patternListMatcher(field: string): (name: string) => boolean {
  const positive: RegExp[] = [];
  const negative: RegExp[] = [];
  for (const pattern of field.split(',')) {
    if (!pattern) continue;
    if (pattern.startsWith('!')) negative.push(globToRegExp(pattern.slice(1)));
    else positive.push(globToRegExp(pattern));
  }
  return (name) => !negative.some((re) => re.test(name)) && positive.some((re) => re.test(name));
}

function parseLine(raw: string): KnownHostsEntry | undefined {
  const line = raw.trim();
  if (!line || line.startsWith('#')) return undefined;
  const fields = line.split(/\s+/);
  let marker: KnownHostsEntry['marker'];
  if (fields[0].startsWith('@')) {
    if (fields[0] === '@revoked') marker = 'revoked';
    else if (fields[0] === '@cert-authority') marker = 'cert-authority';
    else return undefined;
    fields.shift();
  }
  if (fields.length < 3) return undefined;
  const [hosts, type, base64] = fields;
  const blob = Buffer.from(base64, 'base64');
  if (blob.length === 0) return undefined;
  const matches = hosts.startsWith('|') ? hashedMatcher(hosts) : patternListMatcher(hosts);
  if (!matches) return undefined;
  return { marker, matches, key: { type, blob } };
}

export function parseKnownHosts(text: string): KnownHostsEntry[] {
  return text.split('\n').flatMap((line) => parseLine(line) ?? []);
}

export function lookupKnownHosts(text: string, host: string, port: number): KnownHostsLookup {
  const name = knownHostsName(host, port);
  const found: KnownHostsLookup = { keys: [], revoked: [], cas: [] };
  for (const entry of parseKnownHosts(text)) {
    if (!entry.matches(name)) continue;
    (entry.marker === 'revoked' ? found.revoked : entry.marker === 'cert-authority' ? found.cas : found.keys).push(
      entry.key,
    );
  }
  return found;
}

/** A missing file knows no hosts; that surfaces later as an unknown host key, naming the path. */
export function readKnownHosts(path: string, host: string, port: number): KnownHostsLookup {
  return readKnownHostsFiles([path], host, port).lookup;
}

export class KnownHostsReadError extends Error {
  constructor(
    readonly path: string,
    cause: Error,
  ) {
    super(cause.message);
    this.name = 'KnownHostsReadError';
  }
}

/** Every file ssh would consult, in order; `read` lists those that exist. */
export function readKnownHostsFiles(
  paths: string[],
  host: string,
  port: number,
): { lookup: KnownHostsLookup; read: string[] } {
  const lookup: KnownHostsLookup = { keys: [], revoked: [], cas: [] };
  const read: string[] = [];
  for (const path of paths) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new KnownHostsReadError(path, err as Error);
    }
    read.push(path);
    const found = lookupKnownHosts(text, host, port);
    lookup.keys.push(...found.keys);
    lookup.revoked.push(...found.revoked);
    lookup.cas.push(...found.cas);
  }
  return { lookup, read };
}

/** The fingerprint `ssh-keygen -l` and `ssh` print, so an operator can compare them by eye. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The type name embedded at the start of an SSH public key blob. */
export function blobKeyType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  return len > 0 && 4 + len <= blob.length ? blob.subarray(4, 4 + len).toString('latin1') : 'unknown';
}

export function sameKey(a: KnownHostKey, blob: Buffer): boolean {
  return a.blob.length === blob.length && timingSafeEqual(a.blob, blob);
}

// An RSA key is offered under any of its signature algorithms; other types are their own name.
const HOST_KEY_ALGORITHMS: Record<string, string[]> = {
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

/** What to offer the server so it presents a key we can check, not its preferred unknown one. */
export function hostKeyAlgorithmsFor(keys: KnownHostKey[]): string[] {
  const algorithms = keys.flatMap((k) => HOST_KEY_ALGORITHMS[k.type] ?? [k.type]);
  return [...new Set(algorithms)];
}
