// Host certificates made by the real ssh-keygen, with every CA key type it signs with, checked
// the way ssh(1) checks them: a forged byte anywhere in the signed part breaks the signature.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkHostCertificate, parseHostCertificate } from '../activities/ssh/hostCert';
import type { KnownHostKey } from '../activities/ssh/knownHosts';

const dir = mkdtempSync(join(tmpdir(), 'host-cert-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function keygen(...args: string[]): void {
  execFileSync('ssh-keygen', ['-q', ...args], { stdio: 'ignore' });
}

function blobOf(pubFile: string): Buffer {
  return Buffer.from(readFileSync(pubFile, 'utf8').trim().split(/\s+/)[1]!, 'base64');
}

function keyOf(pubFile: string): KnownHostKey {
  const [type, b64] = readFileSync(pubFile, 'utf8').trim().split(/\s+/);
  return { type: type!, blob: Buffer.from(b64!, 'base64') };
}

let n = 0;
function makeCert(caType: string[], hostType: string[], extra: string[] = ['-h']) {
  const i = n++;
  const ca = join(dir, `ca${i}`);
  const host = join(dir, `host${i}`);
  keygen('-t', ...caType, '-N', '', '-f', ca);
  keygen('-t', ...hostType, '-N', '', '-f', host);
  keygen('-s', ca, '-I', `cert${i}`, ...extra, '-n', 'node1.example,10.0.0.*', '-V', '-1h:+1h', `${host}.pub`);
  return { ca: keyOf(`${ca}.pub`), cert: blobOf(`${host}-cert.pub`), hostKey: blobOf(`${host}.pub`) };
}

describe('host certificates from ssh-keygen', () => {
  it.each([
    ['ed25519', ['ed25519']],
    ['ecdsa P-256', ['ecdsa', '-b', '256']],
    ['ecdsa P-384', ['ecdsa', '-b', '384']],
    ['ecdsa P-521', ['ecdsa', '-b', '521']],
    ['rsa 3072', ['rsa', '-b', '3072']],
  ])('verifies a host certificate signed by a %s CA, and binds the host key inside it', (_, caType) => {
    const { ca, cert, hostKey } = makeCert(caType, ['ed25519']);
    const verdict = checkHostCertificate(cert, 'node1.example', [ca], []);
    expect(verdict).toMatchObject({ ok: true });
    if (verdict.ok) expect(verdict.cert.publicKey.equals(hostKey)).toBe(true);
    expect(checkHostCertificate(cert, '10.0.0.7', [ca], []).ok).toBe(true);
  });

  it.each([
    ['rsa', ['rsa', '-b', '2048']],
    ['ecdsa', ['ecdsa', '-b', '256']],
  ])('reads the certified key of a %s host', (_, hostType) => {
    const { ca, cert, hostKey } = makeCert(['ed25519'], hostType);
    const verdict = checkHostCertificate(cert, 'node1.example', [ca], []);
    expect(verdict.ok && verdict.cert.publicKey.equals(hostKey)).toBe(true);
  });

  it.each([
    ['ed25519', ['ed25519']],
    ['ecdsa', ['ecdsa', '-b', '384']],
    ['rsa', ['rsa', '-b', '2048']],
  ])('refuses a certificate from a %s CA with one byte of its signed part changed', (_, caType) => {
    const { ca, cert } = makeCert(caType, ['ed25519']);
    const parsed = parseHostCertificate(cert);
    // The key id's last character: still parses, no longer what the CA signed.
    const idEnd = cert.indexOf(Buffer.from(parsed.keyId)) + parsed.keyId.length - 1;
    const forged = Buffer.from(cert);
    forged[idEnd] ^= 1;
    expect(checkHostCertificate(forged, 'node1.example', [ca], [])).toMatchObject({
      ok: false,
      reason: expect.stringContaining('signature does not verify'),
    });
  });

  it('refuses a user certificate offered as a host certificate', () => {
    const { ca, cert } = makeCert(['ed25519'], ['ed25519'], []);
    expect(checkHostCertificate(cert, 'node1.example', [ca], [])).toMatchObject({
      ok: false,
      reason: expect.stringContaining('is a user certificate'),
    });
  });

  it('refuses a name outside the principals, and accepts wildcard principals', () => {
    const { ca, cert } = makeCert(['ed25519'], ['ed25519']);
    expect(checkHostCertificate(cert, 'node2.example', [ca], [])).toMatchObject({
      ok: false,
      reason: expect.stringContaining('not "node2.example"'),
    });
    expect(checkHostCertificate(cert, '10.0.1.7', [ca], []).ok).toBe(false);
  });

  it('refuses a certificate not yet valid', () => {
    const { ca, cert } = makeCert(['ed25519'], ['ed25519']);
    expect(checkHostCertificate(cert, 'node1.example', [ca], [], new Date(Date.now() - 3 * 3600_000))).toMatchObject({
      ok: false,
      reason: expect.stringContaining('is not valid before'),
    });
  });
});
