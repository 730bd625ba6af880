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
  KeyNeedsPassphrase: 'SshKeyNeedsPassphrase',
  ConfigRefused: 'SshConfigRefused',
  HostCertificateInvalid: 'SshHostCertificateInvalid',
  SudoNeedsPassword: 'SshSudoNeedsPassword',
  NodeAccessRefused: 'SshNodeAccessRefused',
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

/** The known_hosts files consulted, as an operator reads them. */
function filesOf(files: string[]): string {
  return files.length ? files.join(', ') : '(no known_hosts file)';
}

export function hostKeyUnknown(
  target: SshTarget,
  presented: Buffer,
  files: string[],
  certificate?: string,
): ApplicationFailure {
  if (certificate) {
    return fail(
      SshFailureType.HostCertificateInvalid,
      true,
      `host key for ${where(target)} cannot be trusted: ${certificate}, and ${filesOf(files)} hold no plain key for it ` +
        `(it presented ${blobKeyType(presented)} ${fingerprint(presented)})`,
    );
  }
  return fail(
    SshFailureType.HostKeyUnknown,
    true,
    `host key for ${where(target)} is not in ${filesOf(files)}: add it with ssh-keyscan after checking ` +
      `its fingerprint ${blobKeyType(presented)} ${fingerprint(presented)}`,
  );
}

export function hostKeyChanged(
  target: SshTarget,
  presented: Buffer,
  known: KnownHostKey[],
  files: string[],
  certificate?: string,
): ApplicationFailure {
  const knownPrints = known.map((k) => `${k.type} ${fingerprint(k.blob)}`).join(', ');
  return fail(
    SshFailureType.HostKeyChanged,
    true,
    `host key for ${where(target)} has CHANGED: it presented ${blobKeyType(presented)} ${fingerprint(presented)} but ` +
      `${filesOf(files)} knows ${knownPrints}${certificate ? ` (and ${certificate})` : ''}; someone may be impersonating the node, or it was reinstalled ` +
      `(then replace its entry after checking the new fingerprint)`,
  );
}

/** The server offered none of the key types we know for it: as suspicious as a changed key. */
export function hostKeyTypeChanged(target: SshTarget, known: KnownHostKey[], files: string[]): ApplicationFailure {
  const knownPrints = known.map((k) => `${k.type} ${fingerprint(k.blob)}`).join(', ');
  return fail(
    SshFailureType.HostKeyChanged,
    true,
    `host key for ${where(target)} has CHANGED: it offers none of the key types ${filesOf(files)} knows for it ` +
      `(${knownPrints}); check the node's new key with ssh-keyscan before replacing its entry`,
  );
}

export function hostKeyRevoked(target: SshTarget, presented: Buffer, files: string[]): ApplicationFailure {
  return fail(
    SshFailureType.HostKeyRevoked,
    true,
    `host key ${blobKeyType(presented)} ${fingerprint(presented)} of ${where(target)} is marked @revoked in ${filesOf(files)}`,
  );
}

export function authFailed(
  target: SshTarget,
  cause: Error,
  tried: string[],
  skipped: string[] = [],
): ApplicationFailure {
  const offered = tried.length
    ? `with ${tried.length === 1 ? 'key' : 'keys'} ${tried.join(', ')}`
    : 'with no key at all (no agent, no usable key file)';
  const unusable = skipped.length ? `; not usable: ${skipped.join('; ')}` : '';
  return fail(
    SshFailureType.AuthFailed,
    true,
    `ssh login as ${target.username} to ${where(target)} ${offered} was refused: ${cause.message}${unusable}`,
    cause,
  );
}

export function privateKeyUnreadable(target: SshTarget, path: string, cause: Error): ApplicationFailure {
  return fail(
    SshFailureType.PrivateKeyUnreadable,
    true,
    `cannot use private key ${path} for ${where(target)}: ${cause.message}`,
    cause,
  );
}

/** Where ssh(1) would prompt for a passphrase: nobody is there to type it. */
export function keyNeedsPassphrase(target: SshTarget, path: string, agent: string): ApplicationFailure {
  return fail(
    SshFailureType.KeyNeedsPassphrase,
    true,
    `private key ${path} for ${where(target)} is protected by a passphrase and ${agent}: ` +
      `load it into the worker's ssh-agent (ssh-add ${path}, with SSH_AUTH_SOCK set for the worker), or name a key without a passphrase`,
  );
}

export function configRefused(target: SshTarget, cause: Error): ApplicationFailure {
  return fail(SshFailureType.ConfigRefused, true, `cannot connect to ${target.node}: ${cause.message}`, cause);
}

export function knownHostsUnreadable(target: SshTarget, path: string, cause: Error): ApplicationFailure {
  return fail(
    SshFailureType.KnownHostsUnreadable,
    true,
    `cannot read known_hosts file ${path} to check ${where(target)}: ${cause.message}`,
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
