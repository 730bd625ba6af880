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
}

export interface PointComputeEndpointResult {
  summary: string;
  alreadyDone: boolean;
  endpointIds: string[];
  /** URLs as they were, by endpoint id, for an operator who wants to go back. */
  previousUrls: Record<string, string>;
  commands: CommandRecord[];
}

const endpoint = z
  .object({ ID: z.string(), 'Service Type': z.string().optional(), Interface: z.string().optional(), URL: z.string() })
  .loose();
type Endpoint = z.infer<typeof endpoint>;

const sameUrl = (a: string, b: string) => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');

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
    // The list command already filters; a customised template might not.
    return parsed.filter(
      (e) => (e['Service Type'] ?? 'compute') === 'compute' && (e.Interface ?? 'public') === 'public',
    );
  }

  async function pointComputeEndpointAtVip(input: PointComputeEndpointInput): Promise<PointComputeEndpointResult> {
    const { target, osCloud, url } = input;
    const commands: CommandRecord[] = [];
    const list = renderCommand('endpointList', input.listTemplate, { osCloud });
    const endpoints = await computeEndpoints(input, list, commands);
    if (!endpoints.length) {
      throw nonRetryable(
        'NovaComputeEndpointNotFound',
        `keystone has no public compute endpoint (\`${list}\` on ${target.node}); create it before the upgrade`,
        { node: target.node, command: list },
      );
    }
    const previousUrls = Object.fromEntries(endpoints.map((e) => [e.ID, e.URL]));
    const stale = endpoints.filter((e) => !sameUrl(e.URL, url));
    if (!stale.length) {
      return {
        summary: `keystone's public compute endpoint already points at ${url}`,
        alreadyDone: true,
        endpointIds: endpoints.map((e) => e.ID),
        previousUrls,
        commands,
      };
    }
    for (const e of stale) {
      const set = renderCommand('endpointSet', input.setTemplate, { osCloud, url, endpointId: e.ID });
      const r = await beatingWhile(
        { running: set },
        runner.run(target, set, { timeoutMs: 60_000, signal: cancellationSignal() }),
      );
      commands.push(toRecord(r));
      if (r.exitCode !== 0)
        throw new Error(`on ${target.node}, \`${set}\` exited ${r.exitCode ?? r.signal}: ${lastLines(outputOf(r), 5)}`);
    }
    const after = await computeEndpoints(input, list, commands);
    const still = after.filter((e) => !sameUrl(e.URL, url));
    if (still.length)
      throw new Error(`keystone still lists ${still.map((e) => `${e.ID} → ${e.URL}`).join(', ')} after setting ${url}`);
    return {
      summary: `pointed keystone's public compute endpoint at ${url} (was ${[...new Set(stale.map((e) => e.URL))].join(', ')})`,
      alreadyDone: false,
      endpointIds: endpoints.map((e) => e.ID),
      previousUrls,
      commands,
    };
  }

  return { pointComputeEndpointAtVip };
}
