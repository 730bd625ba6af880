// Opens one authenticated SSH connection the way ssh(1) would with the same config, under
// StrictHostKeyChecking=yes and BatchMode=yes: the ssh config decides the host, user, port,
// keys, jump hosts and known_hosts files (the inventory's own values beat it, as ssh's
// command line does); host keys or host certificates are checked before anything is sent;
// keys come from the agent or from files without a passphrase.
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { Client, type AnyAuthMethod, type ConnectConfig, type ServerHostKeyAlgorithm } from 'ssh2';
import type { ApplicationFailure } from '@temporalio/common';
import * as fail from './errors';
import { checkHostCertificate, probeHostCertificate } from './hostCert';
import { listAgentKeys, loadIdentityFile, planLogin, type AgentState, type LoginMethod } from './identity';
import {
  hostKeyAlgorithmsFor,
  KnownHostsReadError,
  readKnownHostsFiles,
  sameKey,
  type KnownHostKey,
} from './knownHosts';
import { resolveRoute, type Hop } from './route';
import { SshConfigError } from './sshConfig';
import type { SshTarget } from '../../common/sshTarget';

export interface ConnectSettings {
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
}

interface LeveledError extends Error {
  level?: string;
}

/**
 * Jump host connections shared by every node behind them: 500 computes behind one bastion
 * cost one login on the bastion per distinct route, not one per pooled connection.
 */
export class JumpHosts {
  private readonly open = new Map<string, { ready: Promise<Client>; refs: number }>();

  async acquire(key: string, connect: () => Promise<Client>): Promise<{ client: Client; release: () => void }> {
    let entry = this.open.get(key);
    if (!entry) {
      const ready = connect();
      const created = { ready, refs: 0 };
      entry = created;
      this.open.set(key, created);
      ready.then(
        (client) => client.once('close', () => this.open.get(key) === created && this.open.delete(key)),
        () => this.open.get(key) === created && this.open.delete(key),
      );
    }
    entry.refs++;
    const held = entry;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      held.refs--;
      if (held.refs === 0 && this.open.get(key) === held) {
        this.open.delete(key);
        held.ready.then(
          (c) => c.end(),
          () => undefined,
        );
      }
    };
    try {
      return { client: await held.ready, release };
    } catch (err) {
      release();
      throw err;
    }
  }

  get size(): number {
    return this.open.size;
  }

  closeAll(): void {
    for (const entry of this.open.values())
      entry.ready.then(
        (c) => c.end(),
        () => undefined,
      );
    this.open.clear();
  }
}

/** A channel to host:port opened by a jump host, as ssh -W does. */
function forward(via: Client, host: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    via.forwardOut('127.0.0.1', 0, host, port, (err, stream) => (err ? reject(err) : resolve(stream)));
  });
}

function tcp(host: string, port: number, timeoutMs: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const sock = netConnect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no TCP connection within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      resolve(sock);
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** The target as messages show one hop of the route: its label, resolved host, port and user. */
function hopTarget(target: SshTarget, hop: Hop): SshTarget {
  return { ...target, node: hop.label, host: hop.config.hostname, port: hop.config.port, username: hop.config.user };
}

function describeAgent(agent: AgentState): string {
  if (agent.kind === 'none') return 'no ssh-agent is set for the worker (SSH_AUTH_SOCK is unset)';
  if (agent.kind === 'unreachable') return `the ssh-agent at ${agent.socket} cannot be reached (${agent.reason})`;
  return `the ssh-agent at ${agent.socket} does not hold it`;
}

interface HostKeyCheck {
  allowed: KnownHostKey[];
  revoked: KnownHostKey[];
  files: string[];
  certificate?: string;
}

async function hostKeysFor(target: SshTarget, hop: Hop, probe: () => Promise<Duplex>): Promise<HostKeyCheck> {
  const cfg = hop.config;
  const who = hopTarget(target, hop);
  // ssh looks up the alias as written, and otherwise [host]:port for a port other than 22.
  const consulted = [...cfg.userKnownHostsFiles, ...cfg.globalKnownHostsFiles];
  let found;
  try {
    found = readKnownHostsFiles(consulted, cfg.hostKeyAlias ?? cfg.hostname, cfg.hostKeyAlias ? 22 : cfg.port);
  } catch (err) {
    if (err instanceof KnownHostsReadError) throw fail.knownHostsUnreadable(who, err.path, err);
    throw err;
  }
  // Messages name the files the operator edits: those read, or else the first one ssh would use.
  const files = found.read.length ? found.read : consulted.slice(0, 1);
  const check: HostKeyCheck = { allowed: [...found.lookup.keys], revoked: found.lookup.revoked, files };
  if (found.lookup.cas.length === 0) return check;

  let stream: Duplex;
  try {
    stream = await probe();
  } catch (err) {
    throw fail.connectFailed(who, err as Error);
  }
  let result;
  try {
    result = await probeHostCertificate(stream, target.connectTimeoutMs);
  } catch (err) {
    throw fail.connectFailed(who, new Error(`host certificate probe failed: ${(err as Error).message}`));
  }
  if (result.kind === 'no-certificate') {
    check.certificate = `it presents no host certificate (it offers ${result.offered.join(', ')}) although ${files.join(', ')} trusts a CA for it`;
    return check;
  }
  const verdict = checkHostCertificate(
    result.blob,
    cfg.hostKeyAlias ?? cfg.hostname,
    found.lookup.cas,
    found.lookup.revoked,
  );
  if (verdict.ok) check.allowed.push({ type: verdict.cert.publicKeyType, blob: verdict.cert.publicKey });
  else check.certificate = verdict.reason;
  return check;
}

/** Opens one hop: over `via` when a jump host leads to it, else over TCP. */
async function connectHop(
  target: SshTarget,
  hop: Hop,
  via: Client | undefined,
  settings: ConnectSettings,
): Promise<Client> {
  const cfg = hop.config;
  const who = hopTarget(target, hop);
  const open = () =>
    via ? forward(via, cfg.hostname, cfg.port) : tcp(cfg.hostname, cfg.port, target.connectTimeoutMs);

  const keys = await hostKeysFor(target, hop, open);

  // Keys: the inventory's own file must be usable; the config's and ssh's defaults may be absent.
  const files = cfg.identityFiles.map(loadIdentityFile);
  // The inventory's key comes first in the list (like ssh -i).
  const own = hop.inventoryKey !== undefined ? files[0] : undefined;
  if (own?.problem && !own.publicBlob) throw fail.privateKeyUnreadable(who, own.path, new Error(own.problem));
  const agent = await listAgentKeys(cfg.agentSocket);
  const plan = planLogin(
    cfg.identityFilesExplicit ? files : files.filter((f) => f.problem !== 'no such file'),
    agent,
    cfg.identitiesOnly,
  );

  let refusal: ApplicationFailure | undefined;
  const hostVerifier = (presented: Buffer): boolean => {
    if (keys.revoked.some((k) => sameKey(k, presented))) refusal = fail.hostKeyRevoked(who, presented, keys.files);
    else if (keys.allowed.length === 0) refusal = fail.hostKeyUnknown(who, presented, keys.files, keys.certificate);
    else if (!keys.allowed.some((k) => sameKey(k, presented)))
      refusal = fail.hostKeyChanged(who, presented, keys.allowed, keys.files, keys.certificate);
    return refusal === undefined;
  };

  const tried: string[] = [];
  let next = 0;
  const authHandler = (): AnyAuthMethod | false => {
    const method: LoginMethod | undefined = plan.methods[next++];
    if (!method) return false;
    if (method.kind === 'needs-passphrase') {
      refusal = fail.keyNeedsPassphrase(who, method.path, describeAgent(agent));
      return false;
    }
    tried.push(method.label);
    if (method.kind === 'agent') return { type: 'agent', username: cfg.user, agent: method.agent };
    return { type: 'publickey', username: cfg.user, key: method.key };
  };

  let sock: Duplex | undefined;
  if (via) {
    try {
      sock = await forward(via, cfg.hostname, cfg.port);
    } catch (err) {
      throw fail.connectFailed(
        who,
        new Error(`the jump host could not open a channel to ${cfg.hostname}:${cfg.port}: ${(err as Error).message}`),
      );
    }
  }
  const config: ConnectConfig = {
    ...(sock ? { sock } : { host: cfg.hostname, port: cfg.port }),
    username: cfg.user,
    readyTimeout: target.connectTimeoutMs,
    keepaliveInterval: settings.keepaliveIntervalMs,
    keepaliveCountMax: settings.keepaliveCountMax,
    hostVerifier,
    authHandler,
    // Without this the server presents its preferred key, which may be a type we hold no entry
    // for; ssh(1) likewise asks for the types it already knows.
    ...(keys.allowed.length > 0
      ? { algorithms: { serverHostKey: hostKeyAlgorithmsFor(keys.allowed) as ServerHostKeyAlgorithm[] } }
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
      if (err.level === 'client-authentication') return refuse(fail.authFailed(who, err, tried, plan.skipped));
      if (/no matching host key format/.test(err.message) && keys.allowed.length > 0)
        return refuse(fail.hostKeyTypeChanged(who, keys.allowed, keys.files));
      refuse(fail.connectFailed(who, err));
    });
    client.once('close', () =>
      refuse(refusal ?? fail.connectFailed(who, new Error('connection closed during the SSH handshake'))),
    );
    try {
      client.connect(config);
    } catch (err) {
      refuse(fail.connectFailed(who, err as Error));
    }
  });
}

function hopKey(hops: Hop[]): string {
  return JSON.stringify(
    hops.map((h) => [
      h.config.user,
      h.config.hostname,
      h.config.port,
      h.config.identityFiles,
      h.config.userKnownHostsFiles,
      h.config.hostKeyAlias,
      h.config.agentSocket,
    ]),
  );
}

/** Resolves the route (refusing configs that would weaken checks), then connects hop by hop. */
export async function openConnection(
  target: SshTarget,
  settings: ConnectSettings,
  jumps: JumpHosts = new JumpHosts(),
): Promise<Client> {
  let hops: Hop[];
  try {
    hops = resolveRoute(target);
  } catch (err) {
    if (err instanceof SshConfigError) throw fail.configRefused(target, err);
    throw err;
  }
  const releases: Array<() => void> = [];
  const releaseAll = () => releases.splice(0).forEach((r) => r());
  try {
    let via: Client | undefined;
    for (let i = 0; i < hops.length - 1; i++) {
      const before = via;
      const lease = await jumps.acquire(hopKey(hops.slice(0, i + 1)), () =>
        connectHop(target, hops[i]!, before, settings),
      );
      releases.push(lease.release);
      via = lease.client;
    }
    const client = await connectHop(target, hops[hops.length - 1]!, via, settings);
    client.once('close', releaseAll);
    return client;
  } catch (err) {
    releaseAll();
    throw err;
  }
}

/** The route as an operator would write it: `bastion (10.0.0.1:22) → compute1 (10.0.1.5:22)`. */
export function describeRoute(target: SshTarget): string {
  return resolveRoute(target)
    .map((h) => `${h.config.user}@${h.config.hostname}:${h.config.port}`)
    .join(' → ');
}
