// From an inventory target to the chain of hosts ssh(1) would connect through. With
// `ProxyJump j1,j2` ssh reaches j2 by running `ssh -J j1 j2`, so the last jump host is reached
// through the ones before it, and the first is reached by its own config, including a
// ProxyJump of its own. The inventory's user, port, key and known_hosts apply to the node
// only; jump hosts take theirs from the ssh config (ssh_config(5), ProxyJump).
import {
  configSources,
  localContext,
  parseJump,
  resolveHostConfig,
  SshConfigError,
  type HostConfig,
  type LocalContext,
} from './sshConfig';
import type { SshTarget } from '../../common/sshTarget';

export interface Hop {
  /** How messages name this hop: the node, or the node's jump host. */
  label: string;
  config: HostConfig;
  /** Whether the inventory named this hop's key itself (only ever the node). */
  inventoryKey: string | undefined;
}

const MAX_HOPS = 8;

export function resolveRoute(target: SshTarget, ctx: LocalContext = localContext()): Hop[] {
  const sources = configSources(target.sshConfig, ctx);
  const defaults = new Set(target.defaults ?? []);
  const seen: string[] = [];

  const chain = (
    host: string,
    cl: { user?: string; port?: number },
    label: string,
    isNode: boolean,
    override: string[] | undefined,
    from: string,
  ): Hop[] => {
    if (seen.length >= MAX_HOPS)
      throw new SshConfigError(
        `${from}: more than ${MAX_HOPS} jump hosts to reach ${target.node} (${seen.join(' → ')}); is there a ProxyJump loop?`,
      );
    const config = resolveHostConfig(
      {
        host,
        ...cl,
        ...(isNode && target.privateKeyPath !== undefined ? { identityFiles: [target.privateKeyPath] } : {}),
        ...(isNode && target.knownHostsPath !== undefined ? { userKnownHostsFiles: [target.knownHostsPath] } : {}),
      },
      sources,
      // ssh logs in to a jump host as the local user unless told otherwise; the node falls back
      // to the inventory's defaults.
      isNode
        ? { defaultUser: target.username, defaultPort: target.port }
        : { defaultUser: ctx.localUser, defaultPort: 22 },
      ctx,
    );
    const key = `${config.user}@${config.hostname}:${config.port}`;
    if (seen.includes(key))
      throw new SshConfigError(`${from}: ProxyJump loop to reach ${target.node}: ${[...seen, key].join(' → ')}`);
    seen.push(key);
    const hop: Hop = { label, config, inventoryKey: isNode ? target.privateKeyPath : undefined };
    const jumps = override ?? config.proxyJump;
    if (!jumps.length) return [hop];
    const where = config.sources.proxyJump ?? from;
    const last = parseJump(jumps[jumps.length - 1]!, where);
    const rest = jumps.slice(0, -1);
    const before = chain(
      last.host,
      { ...(last.user ? { user: last.user } : {}), ...(last.port ? { port: last.port } : {}) },
      `${target.node}'s jump host ${last.host}`,
      false,
      rest.length ? rest : undefined,
      where,
    );
    return [...before, hop];
  };

  return chain(
    target.host,
    {
      ...(defaults.has('username') ? {} : { user: target.username }),
      ...(defaults.has('port') ? {} : { port: target.port }),
    },
    target.node,
    true,
    undefined,
    `ssh settings of ${target.node}`,
  );
}
