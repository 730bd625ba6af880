// Opens one authenticated SSH connection, with host key checking done the way ssh(1) does it
// under StrictHostKeyChecking=yes.
import { readFileSync } from 'node:fs';
import { Client, type ConnectConfig, type ServerHostKeyAlgorithm } from 'ssh2';
import type { ApplicationFailure } from '@temporalio/common';
import * as fail from './errors';
import { hostKeyAlgorithmsFor, readKnownHosts, sameKey, type KnownHostsLookup } from './knownHosts';
import type { SshTarget } from '../../common/sshTarget';

export interface ConnectSettings {
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
}

interface LeveledError extends Error {
  level?: string;
}

export function openConnection(target: SshTarget, settings: ConnectSettings): Promise<Client> {
  let privateKey: Buffer;
  try {
    privateKey = readFileSync(target.privateKeyPath);
  } catch (err) {
    return Promise.reject(fail.privateKeyUnreadable(target, err as Error));
  }
  let known: KnownHostsLookup;
  try {
    known = readKnownHosts(target.knownHostsPath, target.host, target.port);
  } catch (err) {
    return Promise.reject(fail.knownHostsUnreadable(target, err as Error));
  }
  // ssh2's own error only says "Host denied"; the verifier keeps the reason an operator needs.
  let refusal: ApplicationFailure | undefined;
  const hostVerifier = (presented: Buffer): boolean => {
    if (known.revoked.some((k) => sameKey(k, presented))) refusal = fail.hostKeyRevoked(target, presented);
    else if (known.keys.length === 0) refusal = fail.hostKeyUnknown(target, presented);
    else if (!known.keys.some((k) => sameKey(k, presented))) refusal = fail.hostKeyChanged(target, presented, known.keys);
    return refusal === undefined;
  };
  const config: ConnectConfig = {
    host: target.host,
    port: target.port,
    username: target.username,
    privateKey,
    readyTimeout: target.connectTimeoutMs,
    keepaliveInterval: settings.keepaliveIntervalMs,
    keepaliveCountMax: settings.keepaliveCountMax,
    hostVerifier,
    // Without this the server presents its preferred key, which may be a type we hold no entry
    // for; ssh(1) likewise asks for the types it already knows.
    ...(known.keys.length > 0
      ? { algorithms: { serverHostKey: hostKeyAlgorithmsFor(known.keys) as ServerHostKeyAlgorithm[] } }
      : {}),
  };

  return new Promise((resolve, reject) => {
    const client = new Client();
    let settled = false;
    const refuse = (err: Error) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(err);
    };
    client.once('ready', () => {
      settled = true;
      resolve(client);
    });
    // Errors after 'ready' are the pool's to handle; this listener also keeps them from
    // becoming uncaught exceptions.
    client.on('error', (err: LeveledError) => {
      if (refusal) return refuse(refusal);
      if (err.level === 'client-authentication') return refuse(fail.authFailed(target, err));
      if (/no matching host key format/.test(err.message) && known.keys.length > 0) {
        return refuse(fail.hostKeyTypeChanged(target, known.keys));
      }
      refuse(fail.connectFailed(target, err));
    });
    client.once('close', () => refuse(refusal ?? fail.connectFailed(target, new Error('connection closed during the SSH handshake'))));
    try {
      client.connect(config);
    } catch (err) {
      // ssh2 parses the key inside connect(): a malformed or passphrase-protected key lands here.
      refuse(fail.privateKeyUnreadable(target, err as Error));
    }
  });
}
