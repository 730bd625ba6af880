// What the workflow changed that an abort must not leave half-done, and how the abort puts it
// right: no service left stopped that will start, no API server drained that serves, no compute
// left disabled that this upgrade disabled. An API server whose nova-api does not serve stays
// drained and the result says so, since enabling it would fail requests.
import { describeFailure, runKey } from './failures';
import type { Ops } from './ops';
import type { Mark } from './runbook';

/** nova-api's marks keep the server's name alone, as runs started before backends of their own did. */
const drainKey = (d: { server: string; backend?: string }) => (d.backend ? `${d.backend}/${d.server}` : d.server);

export class Exposure {
  private readonly drained = new Map<string, { server: string; node: string; backend?: string }>();
  /** Services a step may have left stopped (a restart or a compute batch in progress). */
  private readonly services = new Map<string, { node: string; unit: string }>();
  /** Compute hosts disabled for scheduling by a batch that has not finished. */
  private readonly disabledComputes = new Set<string>();

  mark(m: Mark): void {
    if ('service' in m) this.services.set(`${m.service.node}/${m.service.unit}`, m.service);
    else if ('drained' in m) this.drained.set(drainKey(m.drained), m.drained);
    else this.disabledComputes.add(m.compute);
  }

  clear(m: Mark): void {
    if ('service' in m) this.services.delete(`${m.service.node}/${m.service.unit}`);
    else if ('drained' in m) this.drained.delete(drainKey(m.drained));
    else this.disabledComputes.delete(m.compute);
  }

  /** Puts right what is marked; returns what it did, in order, for the result. */
  async undo(ops: Ops): Promise<string[]> {
    const notes: string[] = [];
    for (const { node, unit } of this.services.values()) {
      try {
        const out = await ops.services.startService(
          node,
          unit,
          runKey(`abort-start:${node}:${unit}`, 0),
          'again after the abort',
        );
        notes.push(
          out.alreadyDone
            ? `${unit} on ${node} is running`
            : `started ${unit} on ${node} again (it was stopped when the abort came)`,
        );
      } catch (err) {
        notes.push(`left ${unit} on ${node} STOPPED: it does not start (${describeFailure(err)})`);
      }
    }
    for (const { server, node, backend } of this.drained.values()) {
      try {
        await ops.http.checkApiServesVersion(node);
        await ops.haproxy.enableApiServer(server, undefined, backend);
        await ops.haproxy.waitForServerUp(server, backend);
        notes.push(
          `enabled ${backend ? `${backend}/` : ''}${server} again on every LB (it was drained when the abort came)`,
        );
      } catch (err) {
        notes.push(`left ${server} DRAINED: its nova-api on ${node} does not serve (${describeFailure(err)})`);
      }
    }
    if (this.disabledComputes.size) {
      const hosts = [...this.disabledComputes];
      try {
        await ops.computes.enableComputeServices(hosts);
        notes.push(`enabled ${hosts.join(', ')} for scheduling again`);
      } catch (err) {
        notes.push(`left ${hosts.join(', ')} DISABLED for scheduling (${describeFailure(err)})`);
      }
    }
    return notes;
  }
}
