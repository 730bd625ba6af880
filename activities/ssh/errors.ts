// Every failure names the node and the address it was reached at, and says whether retrying
// can help: a workflow's retry policy keys on these types, an operator reads the message.
import { ApplicationFailure } from '@temporalio/common';
import { blobKeyType, fingerprint, type KnownHostKey } from './knownHosts';
import type { SshTarget } from '../../common/sshTarget';

export const SshFailureType = {
  HostKeyUnknown: 'SshHostKeyUnknown',
  HostKeyChanged: 'SshHostKeyChanged',
  HostKeyRevoked: 'SshHostKeyRevoked',
  AuthFailed: 'SshAuthFailed',
  PrivateKeyUnreadable: 'SshPrivateKeyUnreadable',
  KnownHostsUnreadable: 'SshKnownHostsUnreadable',
  ConnectFailed: 'SshConnectFailed',
  ConnectionLost: 'SshConnectionLost',
  CommandTimedOut: 'SshCommandTimedOut',
  SshDetachedRunLost: 'SshDetachedRunLost',
  SshDetachedRunCancelled: 'SshDetachedRunCancelled',
  SshDetachedRunFailedToStart: 'SshDetachedRunFailedToStart',
} as const;
export type SshFailureType = (typeof SshFailureType)[keyof typeof SshFailureType];

export function where(target: SshTarget): string {
  return `${target.node} (${target.host}:${target.port})`;
}

/** Commands can be whole scripts; an error message needs only enough to recognise one. */
export function brief(command: string): string {
  const oneLine = command.replace(/\s*\n\s*/g, ' ; ');
  return oneLine.length > 200 ? `${oneLine.slice(0, 197)}...` : oneLine;
}

function fail(type: SshFailureType, nonRetryable: boolean, message: string, cause?: unknown): ApplicationFailure {
  return ApplicationFailure.create({ type, nonRetryable, message, cause: cause instanceof Error ? cause : undefined });
}

export function hostKeyUnknown(target: SshTarget, presented: Buffer): ApplicationFailure {
  return fail(
    SshFailureType.HostKeyUnknown,
    true,
    `host key for ${where(target)} is not in ${target.knownHostsPath}: add it with ssh-keyscan after checking ` +
      `its fingerprint ${blobKeyType(presented)} ${fingerprint(presented)}`,
  );
}

export function hostKeyChanged(target: SshTarget, presented: Buffer, known: KnownHostKey[]): ApplicationFailure {
  const knownPrints = known.map((k) => `${k.type} ${fingerprint(k.blob)}`).join(', ');
  return fail(
    SshFailureType.HostKeyChanged,
    true,
    `host key for ${where(target)} has CHANGED: it presented ${blobKeyType(presented)} ${fingerprint(presented)} but ` +
      `${target.knownHostsPath} knows ${knownPrints}; someone may be impersonating the node, or it was reinstalled ` +
      `(then replace its entry after checking the new fingerprint)`,
  );
}

/** The server offered none of the key types we know for it: as suspicious as a changed key. */
export function hostKeyTypeChanged(target: SshTarget, known: KnownHostKey[]): ApplicationFailure {
  const knownPrints = known.map((k) => `${k.type} ${fingerprint(k.blob)}`).join(', ');
  return fail(
    SshFailureType.HostKeyChanged,
    true,
    `host key for ${where(target)} has CHANGED: it offers none of the key types ${target.knownHostsPath} knows for it ` +
      `(${knownPrints}); check the node's new key with ssh-keyscan before replacing its entry`,
  );
}

export function hostKeyRevoked(target: SshTarget, presented: Buffer): ApplicationFailure {
  return fail(
    SshFailureType.HostKeyRevoked,
    true,
    `host key ${blobKeyType(presented)} ${fingerprint(presented)} of ${where(target)} is marked @revoked in ${target.knownHostsPath}`,
  );
}

export function authFailed(target: SshTarget, cause: Error): ApplicationFailure {
  return fail(
    SshFailureType.AuthFailed,
    true,
    `ssh login as ${target.username} to ${where(target)} with key ${target.privateKeyPath} was refused: ${cause.message}`,
    cause,
  );
}

export function privateKeyUnreadable(target: SshTarget, cause: Error): ApplicationFailure {
  return fail(
    SshFailureType.PrivateKeyUnreadable,
    true,
    `cannot use private key ${target.privateKeyPath} for ${where(target)}: ${cause.message}`,
    cause,
  );
}

export function knownHostsUnreadable(target: SshTarget, cause: Error): ApplicationFailure {
  return fail(
    SshFailureType.KnownHostsUnreadable,
    true,
    `cannot read known_hosts file ${target.knownHostsPath} to check ${where(target)}: ${cause.message}`,
    cause,
  );
}

export function connectFailed(target: SshTarget, cause: Error): ApplicationFailure {
  const code = (cause as NodeJS.ErrnoException).code;
  const reason =
    code === 'ECONNREFUSED'
      ? 'connection refused (is sshd running and listening on that port?)'
      : /Timed out while waiting for handshake/.test(cause.message)
        ? `no SSH handshake within ${target.connectTimeoutMs} ms (host down, firewalled or sshd hung)`
        : cause.message;
  return fail(SshFailureType.ConnectFailed, false, `cannot connect to ${where(target)}: ${reason}`, cause);
}

export function connectionLost(target: SshTarget, command: string, cause?: Error): ApplicationFailure {
  const detail = cause ? `: ${cause.message}` : '';
  return fail(
    SshFailureType.ConnectionLost,
    false,
    `connection to ${where(target)} was lost while running \`${brief(command)}\`${detail}; the remote command's fate is unknown`,
    cause,
  );
}

export function commandTimedOut(target: SshTarget, command: string, timeoutMs: number): ApplicationFailure {
  return fail(
    SshFailureType.CommandTimedOut,
    false,
    `\`${brief(command)}\` on ${where(target)} did not finish within ${timeoutMs} ms and was killed`,
  );
}
