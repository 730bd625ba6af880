// The one catalogue of failure types: every ApplicationFailure an activity or a workflow raises
// has one of these types, prefixed by the system it concerns (Ssh, Haproxy, Lb, Nova, Tempest,
// Notify). The CLI, the docs and the tests switch on them; test/failureTypes.test.ts keeps the
// sources and this list in step.
export const FAILURE_TYPES = {
  // SSH (activities/ssh/errors.ts): how a node was (not) reached.
  SshHostKeyUnknown: 'the node presented a key that known_hosts does not list',
  SshHostKeyChanged: 'the node presented a different key than known_hosts lists',
  SshHostKeyRevoked: 'the key is marked @revoked in known_hosts',
  SshAuthFailed: 'the node refused the user and key',
  SshPrivateKeyUnreadable: 'the key file named by the inventory cannot be read',
  SshKeyNeedsPassphrase: 'a key file is encrypted and no ssh-agent holds it (ssh would ask for the passphrase)',
  SshHostCertificateInvalid:
    "the node's host certificate does not check out (signature, CA, principals, validity, @revoked)",
  SshSudoNeedsPassword: "sudo on the node would ask for a password (the preflight's sudo -n true)",
  SshNodeAccessRefused:
    'the preflight: one or more nodes refuse the login or password-less sudo (each named, with its own type)',
  SshConfigRefused: 'the ssh config asks for what nova-upgrade refuses (StrictHostKeyChecking no, ProxyCommand, …)',
  SshKnownHostsUnreadable: 'the known_hosts file named by the inventory cannot be read',
  SshConnectFailed: 'no SSH connection could be made',
  SshConnectionLost: 'the connection dropped mid-command',
  SshCommandTimedOut: 'a command outlived its timeout',
  SshDetachedRunLost: 'a detached run vanished from the node (a reboot, or its state directory removed)',
  SshDetachedRunCancelled: 'a detached run was cancelled and is not restarted under the same key',
  SshDetachedRunFailedToStart: 'a detached run could not be started',
  // HAProxy's runtime API (activities/haproxy/).
  HaproxyUnreachable: 'the runtime socket did not answer',
  HaproxyUnexpectedOutput: 'the socket answered something that is not HAProxy 2.x output',
  HaproxySudoRefused: 'sudo for socat on the LB asked for a password or refused',
  HaproxyPermissionDenied: 'the socket is below level operator',
  HaproxyNoSuchServer: 'the backend has no such server',
  HaproxyNoSuchBackend: 'no such backend',
  HaproxyBadServerSpec: 'HAProxy refused the backend/server form',
  HaproxyBadState: 'HAProxy refused the state',
  HaproxyBadWeight: 'a weight outside 0..256',
  HaproxyUnknownCommand: 'HAProxy does not know the command',
  HaproxyInvalidName: 'a backend or server name HAProxy would split into two commands',
  HaproxyNoLoadBalancers: 'the inventory names no LB',
  HaproxyNoRecordedWeight: 'an enable without the weight recorded before the drain',
  HaproxyPreflightFailed: 'a server missing, not UP, or a socket below admin before the upgrade',
  HaproxyDrainNotApplied: 'the drain did not show in HAProxy state',
  HaproxyEnableNotApplied: 'the enable did not show in HAProxy state',
  HaproxyDrainTimeout: 'sessions stayed on the drained server past drainSeconds',
  HaproxyServerNotUp: 'the server did not come back UP with a passed check',
  HaproxyStateDumpUnexpected: 'show servers state answered an unknown format',
  HaproxyConfig: 'the rendered configuration cannot be built from the inventory',
  HaproxyConfigInvalid: 'haproxy -c refused the rendered configuration',
  // lb setup (activities/lb/).
  LbCommandFailed: 'a command of lb setup failed on the LB node',
  LbSudoRefused: 'sudo on the LB node asked for a password or refused',
  LbVipNotHeld: 'no LB node holds the VIP',
  LbVipHeldTwice: 'more than one LB node holds the VIP (split brain)',
  LbVipFrontendNotAnswering: 'the frontend does not answer through the VIP',
  // nova (activities/nova/, workflows/computeBatch.ts).
  NovaBadInput: 'an activity input that cannot be right (an empty host list)',
  NovaMissingCommand: 'a command template for a host is missing',
  NovaCommandFailed: 'a nova command exited non-zero',
  NovaCodeVersionMismatch: 'the install finished but the node reports another version',
  NovaConfigWriteFailed: 'nova.conf could not be written',
  NovaConfigVerifyFailed: 'nova.conf did not read back as written',
  NovaCellListUnreadable: 'nova-manage cell_v2 list_cells printed no table this tool can read',
  NovaCellsDiffer: "nova's cell mappings and the inventory's cells differ (a cell missing from either)",
  NovaEndpointRegionUnnamed: 'the catalog has compute endpoints in more than one region and the inventory names none',
  NovaComputeEndpointNotFound: "keystone's catalog has no compute endpoint to point at the VIP",
  NovaComputeServiceNotFound: 'the service list has no nova-compute record for a host',
  NovaServiceListWithoutReason:
    'the service list lacks "Disabled Reason" (no --long), so an operator\'s disable cannot be told apart',
  NovaTaskStateMissing: 'openstack server list printed no "Task State" column',
  NovaServiceFailedToStart: 'a restarted service did not come up with a new process',
  NovaComputeOlderThanEnvelope:
    "a compute's service version is below the target release's oldest supported one (the service-version preflight)",
  NovaNoDeleteCommand: 'delete-records found no rendered delete command for a record it was asked to delete',
  NovaServiceListWithoutUuids:
    'delete-records refused: the service list printed integer ids (compute API before 2.53), which are per cell',
  NovaServiceRecordUpAgain: 'a service record listed as down reports up again, so delete-records leaves it',
  NovaServiceRowsUnreadable: 'the service-version read printed no services rows nova-upgrade can parse',
  NovaCellUnread: 'the service-version read could not read one of the cells nova maps',
  NovaUpgradeCheckFailed: 'nova-status upgrade check exited 2',
  NovaUpgradeCheckError: 'nova-status upgrade check exited 255',
  NovaUpgradeCheckUnreadable: 'nova-status printed no table this tool can read',
  NovaOnlineDataMigrationsFailed: 'online_data_migrations exited 2',
  NovaOnlineDataMigrationsIncomplete: 'online_data_migrations still had work after maxRounds',
  NovaOnlineDataMigrationsBadInput: 'online_data_migrations exited 127 (bad arguments)',
  // tempest (activities/tempest/).
  TempestFailed: 'tempest ran and a test failed, or none ran',
  // The webhook (activities/notify/).
  NotifyWebhookUrlUnreadable: 'the worker cannot read the webhook URL from the file or variable the inventory names',
  NovaComputeBatchFailed: 'a compute batch child failed; its stage and notes are in the details',
} as const;

export type FailureType = keyof typeof FAILURE_TYPES;
