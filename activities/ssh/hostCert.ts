// OpenSSH host certificates (PROTOCOL.certkeys) checked against `@cert-authority` lines.
//
// ssh2 negotiates plain host keys only: it cannot ask for a certificate, nor verify the KEX
// signature a certificate-type host key makes. So a host with @cert-authority entries is
// checked in two handshakes:
//   1. a short probe (below) offers only the *-cert-v01@openssh.com algorithms and reads the
//      certificate from the server's first key-exchange reply, then hangs up;
//   2. the certificate is verified here: signed by a CA known_hosts trusts for this host, of
//      host type, in its validity window, naming the host among its principals, neither it
//      nor its CA @revoked;
//   3. the real ssh2 connection then accepts exactly the public key the certificate binds.
// The probe's answer is untrusted until (2); (3) is what proves the server holds the key's
// private half, because the KEX signature of the real connection is made with it. A replayed
// certificate therefore gains an impostor nothing, the same guarantee ssh(1) gives.
import { createPublicKey, generateKeyPairSync, randomBytes, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { fingerprint, sameKey, type KnownHostKey } from './knownHosts';

const CERT_ALGORITHMS = [
  'ssh-ed25519-cert-v01@openssh.com',
  'ecdsa-sha2-nistp256-cert-v01@openssh.com',
  'ecdsa-sha2-nistp384-cert-v01@openssh.com',
  'ecdsa-sha2-nistp521-cert-v01@openssh.com',
  'rsa-sha2-512-cert-v01@openssh.com',
  'rsa-sha2-256-cert-v01@openssh.com',
];

const SSH2_CERT_HOST = 2;

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  u8(): number {
    if (this.pos + 1 > this.buf.length) throw new Error('truncated');
    return this.buf[this.pos++]!;
  }
  u32(): number {
    if (this.pos + 4 > this.buf.length) throw new Error('truncated');
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    if (this.pos + 8 > this.buf.length) throw new Error('truncated');
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  bytes(): Buffer {
    const len = this.u32();
    if (this.pos + len > this.buf.length) throw new Error('truncated');
    const v = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return v;
  }
  str(): string {
    return this.bytes().toString('latin1');
  }
}

function sshString(data: Buffer | string): Buffer {
  const b = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

export interface HostCertificate {
  /** The certificate's own type name, e.g. ssh-ed25519-cert-v01@openssh.com. */
  certType: string;
  /** The certified key as a plain SSH public key blob: what the host presents without a certificate. */
  publicKey: Buffer;
  publicKeyType: string;
  serial: bigint;
  type: number;
  keyId: string;
  principals: string[];
  validAfter: bigint;
  validBefore: bigint;
  criticalOptions: string[];
  signatureKey: Buffer;
  /** Everything the CA signed. */
  signed: Buffer;
  signature: Buffer;
}

export function parseHostCertificate(blob: Buffer): HostCertificate {
  const r = new Reader(blob);
  const certType = r.str();
  if (!certType.endsWith('-cert-v01@openssh.com')) throw new Error(`not a certificate: ${certType}`);
  r.bytes(); // nonce
  let publicKeyType: string;
  let keyFields: Buffer[];
  if (certType === 'ssh-ed25519-cert-v01@openssh.com') {
    publicKeyType = 'ssh-ed25519';
    keyFields = [r.bytes()];
  } else if (certType.startsWith('ecdsa-sha2-')) {
    publicKeyType = certType.replace('-cert-v01@openssh.com', '');
    keyFields = [r.bytes(), r.bytes()];
  } else if (certType === 'ssh-rsa-cert-v01@openssh.com') {
    publicKeyType = 'ssh-rsa';
    const e = r.bytes();
    const n = r.bytes();
    keyFields = [e, n];
  } else {
    throw new Error(`unsupported certificate type ${certType}`);
  }
  const publicKey = Buffer.concat([sshString(publicKeyType), ...keyFields.map(sshString)]);
  const serial = r.u64();
  const type = r.u32();
  const keyId = r.str();
  const principalsBlob = new Reader(r.bytes());
  const principals: string[] = [];
  while (principalsBlob.pos < principalsBlob.buf.length) principals.push(principalsBlob.str());
  const validAfter = r.u64();
  const validBefore = r.u64();
  const criticalBlob = new Reader(r.bytes());
  const criticalOptions: string[] = [];
  while (criticalBlob.pos < criticalBlob.buf.length) {
    criticalOptions.push(criticalBlob.str());
    criticalBlob.bytes();
  }
  r.bytes(); // extensions
  r.bytes(); // reserved
  const signatureKey = r.bytes();
  const signed = blob.subarray(0, r.pos);
  const signature = r.bytes();
  return {
    certType,
    publicKey,
    publicKeyType,
    serial,
    type,
    keyId,
    principals,
    validAfter,
    validBefore,
    criticalOptions,
    signatureKey,
    signed,
    signature,
  };
}

const b64url = (b: Buffer) => b.toString('base64url');
const unsigned = (b: Buffer) => {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
};

const CURVES: Record<string, { jwk: string; size: number; hash: string }> = {
  nistp256: { jwk: 'P-256', size: 32, hash: 'sha256' },
  nistp384: { jwk: 'P-384', size: 48, hash: 'sha384' },
  nistp521: { jwk: 'P-521', size: 66, hash: 'sha512' },
};

/** A node KeyObject for an SSH public key blob (ed25519, ECDSA, RSA). */
function keyObjectOf(blob: Buffer): { key: KeyObject; type: string; curve?: (typeof CURVES)[string] } {
  const r = new Reader(blob);
  const type = r.str();
  if (type === 'ssh-ed25519')
    return { type, key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(r.bytes()) }, format: 'jwk' }) };
  if (type.startsWith('ecdsa-sha2-')) {
    const curve = CURVES[r.str()];
    const q = r.bytes();
    if (!curve || q[0] !== 4 || q.length !== 1 + 2 * curve.size) throw new Error(`unsupported ECDSA key ${type}`);
    const x = q.subarray(1, 1 + curve.size);
    const y = q.subarray(1 + curve.size);
    return {
      type,
      curve,
      key: createPublicKey({ key: { kty: 'EC', crv: curve.jwk, x: b64url(x), y: b64url(y) }, format: 'jwk' }),
    };
  }
  if (type === 'ssh-rsa') {
    const e = unsigned(r.bytes());
    const n = unsigned(r.bytes());
    return { type, key: createPublicKey({ key: { kty: 'RSA', n: b64url(n), e: b64url(e) }, format: 'jwk' }) };
  }
  throw new Error(`unsupported CA key type ${type}`);
}

/** Verifies an SSH signature blob (`string alg, string sig`) over `data` with an SSH public key blob. */
export function verifySshSignature(keyBlob: Buffer, data: Buffer, signatureBlob: Buffer): boolean {
  const { key, type, curve } = keyObjectOf(keyBlob);
  const s = new Reader(signatureBlob);
  const alg = s.str();
  const sig = s.bytes();
  if (type === 'ssh-ed25519') return alg === 'ssh-ed25519' && cryptoVerify(null, data, key, sig);
  if (type === 'ssh-rsa') {
    // ssh(1) no longer accepts SHA-1 signatures from a CA (CASignatureAlgorithms).
    const hash = alg === 'rsa-sha2-256' ? 'sha256' : alg === 'rsa-sha2-512' ? 'sha512' : undefined;
    return hash !== undefined && cryptoVerify(hash, data, key, sig);
  }
  if (curve) {
    if (alg !== type) return false;
    const rs = new Reader(sig);
    const pad = (b: Buffer) => {
      const v = unsigned(b);
      if (v.length > curve.size) throw new Error('bad ECDSA signature');
      return Buffer.concat([Buffer.alloc(curve.size - v.length), v]);
    };
    const raw = Buffer.concat([pad(rs.bytes()), pad(rs.bytes())]);
    return cryptoVerify(curve.hash, data, { key, dsaEncoding: 'ieee-p1363' }, raw);
  }
  return false;
}

function globMatch(text: string, pattern: string): boolean {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i').test(text);
}

export type CertificateVerdict =
  { ok: true; cert: HostCertificate; ca: KnownHostKey } | { ok: false; reason: string; cert?: HostCertificate };

function describeTime(t: bigint): string {
  if (t >= 0xffffffffffffffffn) return 'forever';
  return new Date(Number(t) * 1000).toISOString();
}

/**
 * What ssh(1) checks of a host certificate. `name` is the host name (or HostKeyAlias) without a
 * port; `cas` the @cert-authority keys that known_hosts gives for this host.
 */
export function checkHostCertificate(
  blob: Buffer,
  name: string,
  cas: KnownHostKey[],
  revoked: KnownHostKey[],
  now = new Date(),
): CertificateVerdict {
  let cert: HostCertificate;
  try {
    cert = parseHostCertificate(blob);
  } catch (err) {
    return { ok: false, reason: `its certificate cannot be read (${(err as Error).message})` };
  }
  const ca = cas.find((k) => sameKey(k, cert.signatureKey));
  const caPrint = fingerprint(cert.signatureKey);
  if (!ca)
    return {
      ok: false,
      cert,
      reason: `its certificate is signed by CA ${caPrint}, which no @cert-authority line trusts for this host`,
    };
  if (revoked.some((k) => sameKey(k, cert.signatureKey)))
    return { ok: false, cert, reason: `its certificate's CA ${caPrint} is marked @revoked` };
  if (revoked.some((k) => sameKey(k, cert.publicKey)))
    return { ok: false, cert, reason: `its certified key ${fingerprint(cert.publicKey)} is marked @revoked` };
  let valid: boolean;
  try {
    valid = verifySshSignature(cert.signatureKey, cert.signed, cert.signature);
  } catch (err) {
    return { ok: false, cert, reason: `its certificate's signature cannot be checked (${(err as Error).message})` };
  }
  if (!valid) return { ok: false, cert, reason: `its certificate's signature does not verify with CA ${caPrint}` };
  if (cert.type !== SSH2_CERT_HOST)
    return { ok: false, cert, reason: `its certificate "${cert.keyId}" is a user certificate, not a host certificate` };
  const t = BigInt(Math.floor(now.getTime() / 1000));
  if (t < cert.validAfter)
    return {
      ok: false,
      cert,
      reason: `its certificate "${cert.keyId}" is not valid before ${describeTime(cert.validAfter)}`,
    };
  if (t >= cert.validBefore)
    return { ok: false, cert, reason: `its certificate "${cert.keyId}" expired at ${describeTime(cert.validBefore)}` };
  if (cert.criticalOptions.length)
    return {
      ok: false,
      cert,
      reason: `its certificate "${cert.keyId}" carries critical options (${cert.criticalOptions.join(', ')}) that host certificates do not have`,
    };
  // ssh(1) accepts a host certificate without principals for any host; wildcards are allowed.
  if (cert.principals.length && !cert.principals.some((p) => globMatch(name, p))) {
    return {
      ok: false,
      cert,
      reason: `its certificate "${cert.keyId}" names ${cert.principals.map((p) => `"${p}"`).join(', ')}, not "${name}"`,
    };
  }
  return { ok: true, cert, ca };
}

// ---------------------------------------------------------------------------------------------
// The probe: the first half of an SSH key exchange (RFC 4253, RFC 8731), enough to read the
// host key the server presents for a certificate algorithm. Nothing is authenticated or sent
// after the server's reply.

const MSG_DISCONNECT = 1;
const MSG_IGNORE = 2;
const MSG_DEBUG = 4;
const MSG_KEXINIT = 20;
const MSG_KEX_ECDH_INIT = 30;
const MSG_KEX_ECDH_REPLY = 31;

function nameList(names: string[]): Buffer {
  return sshString(names.join(','));
}

function packet(payload: Buffer): Buffer {
  let padding = 8 - ((5 + payload.length) % 8);
  if (padding < 4) padding += 8;
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1 + payload.length + padding);
  head[4] = padding;
  return Buffer.concat([head, payload, randomBytes(padding)]);
}

export type ProbeResult = { kind: 'certificate'; blob: Buffer } | { kind: 'no-certificate'; offered: string[] };

/**
 * Reads the host certificate a server presents, over `stream` (a TCP socket or a channel
 * forwarded by a jump host). Resolves `no-certificate` when the server offers no certificate
 * host key algorithm at all.
 */
export function probeHostCertificate(stream: Duplex, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let versionSeen = false;
    let done = false;
    // Only our public value is needed: the probe never completes the exchange.
    const { publicKey } = generateKeyPairSync('x25519');
    const q = publicKey.export({ format: 'jwk' }).x;
    const finish = (err: Error | undefined, result?: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.removeAllListeners('data');
      stream.destroy();
      if (err) reject(err);
      else resolve(result!);
    };
    const timer = setTimeout(() => finish(new Error(`no certificate exchange within ${timeoutMs} ms`)), timeoutMs);
    stream.on('error', (err: Error) => finish(err));
    stream.on('close', () => finish(new Error('the server closed the connection during the certificate probe')));

    const kexinit = Buffer.concat([
      Buffer.from([MSG_KEXINIT]),
      randomBytes(16),
      nameList(['curve25519-sha256', 'curve25519-sha256@libssh.org']),
      nameList(CERT_ALGORITHMS),
      nameList(['aes128-ctr', 'aes256-ctr', 'aes128-gcm@openssh.com', 'chacha20-poly1305@openssh.com']),
      nameList(['aes128-ctr', 'aes256-ctr', 'aes128-gcm@openssh.com', 'chacha20-poly1305@openssh.com']),
      nameList(['hmac-sha2-256', 'hmac-sha2-512', 'hmac-sha2-256-etm@openssh.com']),
      nameList(['hmac-sha2-256', 'hmac-sha2-512', 'hmac-sha2-256-etm@openssh.com']),
      nameList(['none']),
      nameList(['none']),
      nameList([]),
      nameList([]),
      Buffer.from([0, 0, 0, 0, 0]),
    ]);
    stream.write('SSH-2.0-nova-upgrade-cert-probe\r\n');

    const onPacket = (payload: Buffer) => {
      const type = payload[0];
      if (type === MSG_IGNORE || type === MSG_DEBUG) return;
      if (type === MSG_DISCONNECT) {
        const r = new Reader(payload.subarray(1));
        r.u32();
        return finish(new Error(`the server disconnected: ${r.str()}`));
      }
      if (type === MSG_KEXINIT) {
        const r = new Reader(payload.subarray(17));
        r.str(); // kex algorithms
        const hostKeyAlgorithms = r.str().split(',');
        if (!hostKeyAlgorithms.some((a) => CERT_ALGORITHMS.includes(a)))
          return finish(undefined, { kind: 'no-certificate', offered: hostKeyAlgorithms });
        stream.write(packet(kexinit));
        stream.write(
          packet(Buffer.concat([Buffer.from([MSG_KEX_ECDH_INIT]), sshString(Buffer.from(q!, 'base64url'))])),
        );
        return;
      }
      if (type === MSG_KEX_ECDH_REPLY) {
        const r = new Reader(payload.subarray(1));
        return finish(undefined, { kind: 'certificate', blob: Buffer.from(r.bytes()) });
      }
      finish(new Error(`unexpected SSH message ${type} during the certificate probe`));
    };

    stream.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      try {
        if (!versionSeen) {
          // Servers may send other lines before their version string (RFC 4253 4.2).
          for (;;) {
            const nl = buf.indexOf(10);
            if (nl < 0) {
              if (buf.length > 8192) throw new Error('no SSH version line from the server');
              return;
            }
            const line = buf.subarray(0, nl).toString('latin1').replace(/\r$/, '');
            buf = buf.subarray(nl + 1);
            if (line.startsWith('SSH-')) {
              if (!line.startsWith('SSH-2.0-') && !line.startsWith('SSH-1.99-'))
                throw new Error(`the server speaks ${line}`);
              versionSeen = true;
              break;
            }
          }
        }
        while (!done && buf.length >= 5) {
          const len = buf.readUInt32BE(0);
          if (len > 256 * 1024 || len < 2) throw new Error('malformed SSH packet');
          if (buf.length < 4 + len) return;
          const pad = buf[4]!;
          const payload = buf.subarray(5, 4 + len - pad);
          buf = buf.subarray(4 + len);
          onPacket(payload);
        }
      } catch (err) {
        finish(err as Error);
      }
    });
  });
}
