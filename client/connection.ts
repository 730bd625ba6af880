// How the CLI and the worker reach Temporal: an envconfig profile and TEMPORAL_* variables
// first, then flags on top. TLS material and API keys are read from files or the environment,
// never from the inventory.
import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { TASK_QUEUE } from '../common/messages';

export interface ConnectionFlags {
  address?: string;
  namespace?: string;
  profile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsServerName?: string;
  apiKeyFile?: string;
  taskQueue?: string;
}

export interface ResolvedConnection {
  address: string;
  namespace: string;
  taskQueue: string;
  tls?:
    | { clientCertPair?: { crt: Buffer; key: Buffer }; serverRootCACertificate?: Buffer; serverNameOverride?: string }
    | boolean;
  apiKey?: string;
}

export class ConnectionError extends Error {
  override name = 'ConnectionError';
}

function readSecret(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConnectionError(
      `cannot read the ${what} file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
}

export function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): ResolvedConnection {
  let base: { connectionOptions: NativeConnectionOptions; namespace?: string } = { connectionOptions: {} };
  try {
    base = loadClientConnectConfig({ ...(flags.profile ? { profile: flags.profile } : {}) });
  } catch (err) {
    // No config file is the common case; a broken one must be said, not silently ignored.
    if (flags.profile || env.TEMPORAL_CONFIG_FILE)
      throw new ConnectionError(`cannot load Temporal profile: ${(err as Error).message}`);
  }
  const address = flags.address ?? base.connectionOptions.address ?? '127.0.0.1:7233';
  const namespace = flags.namespace ?? base.namespace ?? 'default';
  const taskQueue = flags.taskQueue ?? env.NOVA_UPGRADE_TASK_QUEUE ?? TASK_QUEUE;
  const apiKey = flags.apiKeyFile
    ? readSecret(flags.apiKeyFile, 'API key').toString('utf8').trim()
    : base.connectionOptions.apiKey;
  let tls: ResolvedConnection['tls'] = base.connectionOptions.tls as ResolvedConnection['tls'];
  if (flags.tlsCert || flags.tlsKey || flags.tlsCa || flags.tlsServerName) {
    if (!!flags.tlsCert !== !!flags.tlsKey)
      throw new ConnectionError('--tls-cert and --tls-key go together (mTLS needs both)');
    tls = {
      ...(flags.tlsCert && flags.tlsKey
        ? {
            clientCertPair: {
              crt: readSecret(flags.tlsCert, 'TLS certificate'),
              key: readSecret(flags.tlsKey, 'TLS key'),
            },
          }
        : {}),
      ...(flags.tlsCa ? { serverRootCACertificate: readSecret(flags.tlsCa, 'TLS CA') } : {}),
      ...(flags.tlsServerName ? { serverNameOverride: flags.tlsServerName } : {}),
    };
  }
  return { address, namespace, taskQueue, ...(tls ? { tls } : {}), ...(typeof apiKey === 'string' ? { apiKey } : {}) };
}

export function connectionOptions(c: ResolvedConnection): NativeConnectionOptions {
  return { address: c.address, ...(c.tls ? { tls: c.tls } : {}), ...(c.apiKey ? { apiKey: c.apiKey } : {}) };
}

/** Connects or says, in one sentence, why it could not. */
export async function connectClient(c: ResolvedConnection): Promise<Client> {
  try {
    const connection = await Connection.connect({ ...connectionOptions(c), connectTimeout: '5s' });
    return new Client({ connection, namespace: c.namespace });
  } catch (err) {
    throw new ConnectionError(
      `cannot reach the Temporal server at ${c.address} (${(err as Error).message.split('\n')[0]}); start one with "nova-upgrade server start" or pass --address`,
    );
  }
}
