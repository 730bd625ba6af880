// The probe's keystone side: credentials from a clouds.yaml on the probe's own host (so no
// password travels in a workflow's history), a token from keystone's v3 password method, and
// the SSH public key its keypair requests upload.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { httpRequest, HttpRequestError } from './get';

export interface CloudCredentials {
  /** keystone's v3 root, e.g. http://ctl:5000/v3 */
  authUrl: string;
  username: string;
  password: string;
  projectName: string;
  userDomain: { id: string } | { name: string };
  projectDomain: { id: string } | { name: string };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);

/** Reads one cloud's password credentials from a clouds.yaml; a sentence naming the file and field otherwise. */
export function readCloudCredentials(file: string, cloud: string): CloudCredentials {
  let doc: unknown;
  try {
    doc = parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`the probe cannot read ${file}: ${(e as Error).message}`);
  }
  const clouds = (doc as { clouds?: Record<string, unknown> } | null)?.clouds;
  const entry = clouds?.[cloud] as { auth?: Record<string, unknown> } | undefined;
  if (!entry) throw new Error(`${file} has no cloud named "${cloud}" (clouds.${cloud})`);
  const a = entry.auth ?? {};
  const need = (field: string): string => {
    const v = str(a[field]);
    if (!v) throw new Error(`${file}: clouds.${cloud}.auth.${field} is missing`);
    return v;
  };
  const domain = (prefix: 'user' | 'project'): { id: string } | { name: string } => {
    const id = str(a[`${prefix}_domain_id`]);
    const name = str(a[`${prefix}_domain_name`]);
    return id ? { id } : name ? { name } : { id: 'default' };
  };
  const root = need('auth_url').replace(/\/+$/, '');
  return {
    authUrl: /\/v3$/.test(root) ? root : `${root}/v3`,
    username: need('username'),
    password: need('password'),
    projectName: need('project_name'),
    userDomain: domain('user'),
    projectDomain: domain('project'),
  };
}

export interface Token {
  id: string;
  /** ms since the epoch */
  expiresAt: number;
}

export class TokenError extends Error {
  constructor(
    readonly kind: 'connection' | 'timeout' | 'http4xx' | 'http5xx',
    message: string,
  ) {
    super(message);
    this.name = 'TokenError';
  }
}

/** POST /v3/auth/tokens with the password method, scoped to the project. */
export async function issueToken(c: CloudCredentials, timeoutMs: number): Promise<Token> {
  let res;
  try {
    res = await httpRequest('POST', `${c.authUrl}/auth/tokens`, {
      timeoutMs,
      json: {
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: c.username, domain: c.userDomain, password: c.password } },
          },
          scope: { project: { name: c.projectName, domain: c.projectDomain } },
        },
      },
    });
  } catch (e) {
    if (e instanceof HttpRequestError) throw new TokenError(e.kind, `keystone ${c.authUrl}: ${e.message}`);
    throw e;
  }
  if (res.status >= 300)
    throw new TokenError(
      res.status >= 500 ? 'http5xx' : 'http4xx',
      `keystone ${c.authUrl} answered HTTP ${res.status}`,
    );
  const id = res.headers['x-subject-token'];
  let expires = NaN;
  try {
    expires = Date.parse((JSON.parse(res.body) as { token?: { expires_at?: string } }).token?.expires_at ?? '');
  } catch {
    /* checked below */
  }
  if (typeof id !== 'string' || !id || Number.isNaN(expires))
    throw new TokenError('http4xx', `keystone ${c.authUrl} answered ${res.status} without a token or its expiry`);
  return { id, expiresAt: expires };
}

/** A fresh ed25519 public key in OpenSSH's one-line form, for os-keypairs (required from 2.92). */
export function sshPublicKey(comment: string): string {
  const jwk = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
  const raw = Buffer.from(jwk.x!, 'base64url');
  const field = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const blob = Buffer.concat([field(Buffer.from('ssh-ed25519')), field(raw)]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}
