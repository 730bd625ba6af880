// Points keystone's public compute endpoint at the VIP, so clients reach whichever nova-api
// HAProxy routes to instead of one node that is about to be restarted.
import { z } from 'zod';
import { renderCommand } from '../../inventory/commands';
import type { CommandRecord } from '../ssh/types';
import type { SshTarget } from '../../common/sshTarget';
import { lastLines, outputOf, runRead, toRecord, type NovaDeps, beatingWhile } from './common';
import { cancellationSignal, nonRetryable } from '../common';

export interface PointComputeEndpointInput {
  /** The controller, where the openstack CLI runs. */
  target: SshTarget;
  osCloud: string;
  /** The inventory's endpointList and endpointSet templates, rendered here (renderCommand is pure). */
  listTemplate: string;
  setTemplate: string;
  url: string;
  /** The region to change; required when the catalog has compute endpoints in more than one. */
  region?: string;
  /** The interfaces to change; public only when absent (runs started before this existed). */
  interfaces?: string[];
}

export interface PointComputeEndpointResult {
  summary: string;
  alreadyDone: boolean;
  endpointIds: string[];
  /** The region changed. */
  region: string;
  /** URLs as they were, by endpoint id, for an operator who wants to go back. */
  previousUrls: Record<string, string>;
  commands: CommandRecord[];
}

const endpoint = z
  .object({
    ID: z.string(),
    Region: z.string().nullable().optional(),
    'Service Type': z.string().optional(),
    Interface: z.string().optional(),
    URL: z.string(),
  })
  .loose();
type Endpoint = z.infer<typeof endpoint>;

const describeEp = (e: Endpoint) => `${e.Interface ?? 'public'} ${e.ID} → ${e.URL}`;

export function createKeystoneActivities(deps: NovaDeps) {
  const { runner } = deps;

  async function computeEndpoints(
    input: PointComputeEndpointInput,
    command: string,
    commands: CommandRecord[],
  ): Promise<Endpoint[]> {
    const out = (await runRead(runner, input.target, command, commands)).stdout;
    let parsed: Endpoint[];
    try {
      parsed = z.array(endpoint).parse(JSON.parse(out));
    } catch {
      throw new Error(
        `\`${command}\` on ${input.target.node} did not print the endpoint list as JSON: ${out.slice(0, 200)}`,
      );
    }
    // The list command already filters by service; a customised template might not.
    return parsed.filter((e) => (e['Service Type'] ?? 'compute') === 'compute');
  }

  /**
   * The region's endpoints of the named interfaces, each of which must exist; the catalog's
   * only region when none is named, and a refusal when it has several.
   */
  function pick(
    input: PointComputeEndpointInput,
    all: Endpoint[],
    list: string,
  ): { region: string; chosen: Endpoint[] } {
    const { target } = input;
    const interfaces = input.interfaces ?? ['public'];
    const regions = [...new Set(all.map((e) => e.Region ?? ''))].sort();
    const region = input.region ?? (regions.length === 1 ? regions[0]! : undefined);
    if (region === undefined) {
      throw nonRetryable(
        'NovaEndpointRegionUnnamed',
        `keystone's catalog has compute endpoints in ${regions.length ? `regions ${regions.join(', ')}` : 'no region'}` +
          ` (\`${list}\` on ${target.node}): name the region whose endpoint points at the VIP in openstack.region`,
        { node: target.node, regions },
      );
    }
    const inRegion = all.filter((e) => (e.Region ?? '') === region);
    const chosen = inRegion.filter((e) => interfaces.includes(e.Interface ?? 'public'));
    const lacking = interfaces.filter((i) => !chosen.some((e) => (e.Interface ?? 'public') === i));
    if (lacking.length) {
      throw nonRetryable(
        'NovaComputeEndpointNotFound',
        `keystone has no ${lacking.join(', ')} compute endpoint in region ${region || '(none)'}` +
          ` (\`${list}\` on ${target.node} lists regions ${regions.join(', ') || '(none)'}); create it before the upgrade, or correct openstack.region or vip.computeEndpointInterfaces`,
        { node: target.node, command: list, region, lacking },
      );
    }
    return { region, chosen };
  }

  async function pointComputeEndpointAtVip(input: PointComputeEndpointInput): Promise<PointComputeEndpointResult> {
    const { target, osCloud, url } = input;
    const commands: CommandRecord[] = [];
    const list = renderCommand('endpointList', input.listTemplate, { osCloud });
    const { region, chosen } = pick(input, await computeEndpoints(input, list, commands), list);
    const previousUrls = Object.fromEntries(chosen.map((e) => [e.ID, e.URL]));
    const where = `keystone's ${[...new Set(chosen.map((e) => e.Interface ?? 'public'))].join(', ')} compute endpoint in region ${region}`;
    // Exactly the inventory's URL: a catalog entry differing by a trailing slash is set too.
    const stale = chosen.filter((e) => e.URL !== url);
    if (!stale.length) {
      return {
        summary: `${where} already points at ${url}`,
        alreadyDone: true,
        endpointIds: chosen.map((e) => e.ID),
        region,
        previousUrls,
        commands,
      };
    }
    for (const e of stale) {
      // By id alone: `endpoint set --region` would move the endpoint to another region.
      const set = renderCommand('endpointSet', input.setTemplate, { osCloud, url, endpointId: e.ID });
      const r = await beatingWhile(
        { running: set },
        runner.run(target, set, { timeoutMs: 60_000, signal: cancellationSignal() }),
      );
      commands.push(toRecord(r));
      if (r.exitCode !== 0)
        throw new Error(`on ${target.node}, \`${set}\` exited ${r.exitCode ?? r.signal}: ${lastLines(outputOf(r), 5)}`);
    }
    const after = pick(input, await computeEndpoints(input, list, commands), list).chosen;
    const still = after.filter((e) => e.URL !== url);
    if (still.length) throw new Error(`keystone still lists ${still.map(describeEp).join(', ')} after setting ${url}`);
    return {
      summary: `pointed ${where} at ${url} (was ${stale.map(describeEp).join(', ')})`,
      alreadyDone: false,
      endpointIds: chosen.map((e) => e.ID),
      region,
      previousUrls,
      commands,
    };
  }

  return { pointComputeEndpointAtVip };
}
