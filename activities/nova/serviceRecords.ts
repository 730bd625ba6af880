// The service-version preflight on the cloud, and the gated removal of the records it finds
// keeping the compute RPC pinned. The judgement is serviceVersions.ts (pure); here the rows are
// read on the controller through nova's own code, and a record is deleted only when the
// operator chose it at the hold, and only while it is still there and still down.
import type { SshTarget } from '../../common/sshTarget';
import { nonRetryable } from '../common';
import type { CommandRecord } from '../ssh/types';
import { runRead, type NovaDeps } from './common';
import { SERVICE_LIST_OUTPUT_BYTES } from './computes';
import { parseServiceList } from './serviceList';
import {
  judgeServiceVersions,
  parseServiceRowsOutput,
  type CellServices,
  type ServiceFinding,
  type ServiceVersionReport,
} from './serviceVersions';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface CheckServiceVersionsInput {
  /** The controller, whose nova config reaches the API database and through it every cell. */
  target: SshTarget;
  /** The rendered serviceVersions template (the read script included). */
  command: string;
  /** release.to: its envelope is what counts. */
  to: string;
  inventoryComputeHosts: string[];
  excludedHosts: string[];
  /** The inventory's cells: a cell nova has and the read did not return would be a blind spot. */
  cells: string[];
}

export interface CheckServiceVersionsResult {
  summary: string;
  report: ServiceVersionReport;
  /**
   * Rows read per cell. The rows themselves stay here: ~250 bytes each, they would make the
   * result grow with the fleet (1,002 services on the scale lab; Temporal refuses a payload
   * over 2 MiB, near 8,000 rows). Results recorded before carry `cells` as well.
   */
  rowsPerCell: Record<string, number>;
  commands: CommandRecord[];
}

export interface PinningRecord {
  /** What `openstack compute service delete` takes: the uuid (or the id before uuids). */
  ref: string;
  host: string;
  binary: string;
  cell: string;
}

export interface DeleteServiceRecordsInput {
  target: SshTarget;
  /** The rendered serviceList template: the state before each delete. */
  listCommand: string;
  records: PinningRecord[];
  /** ref → the rendered computeServiceDelete command. */
  deleteCommands: Record<string, string>;
}

export function pinningRecordOf(f: ServiceFinding): PinningRecord {
  return { ref: f.ref, host: f.host, binary: f.binary, cell: f.cell };
}

export function createServiceRecordActivities(deps: NovaDeps) {
  const { runner } = deps;

  /**
   * Reads every cell's services rows and judges them against release.to: a compute older than
   * its envelope stops the start (non-retryable: nova's control services would refuse to start
   * beside it); the records that would keep the RPC pinned are returned for the workflow to
   * offer their deletion. Changes nothing.
   */
  async function checkServiceVersions(input: CheckServiceVersionsInput): Promise<CheckServiceVersionsResult> {
    const commands: CommandRecord[] = [];
    // One JSON line for every row of every cell: past the pool's 64 KiB tail at a few hundred
    // computes (the 1,000-compute scale lab failed here with "printed no NOVA_UPGRADE_SERVICE_ROWS
    // line"). Parsed and dropped, never recorded.
    const out = (await runRead(runner, input.target, input.command, commands, undefined, SERVICE_LIST_OUTPUT_BYTES))
      .stdout;
    let cells: CellServices[];
    try {
      cells = parseServiceRowsOutput(out);
    } catch (e) {
      throw nonRetryable('NovaServiceRowsUnreadable', `on ${input.target.node}: ${(e as Error).message}`, {
        node: input.target.node,
      });
    }
    const report = judgeServiceVersions({
      cells,
      to: input.to,
      now: Date.now(),
      inventoryComputeHosts: input.inventoryComputeHosts,
      excludedHosts: input.excludedHosts,
    });
    const read = new Set(cells.map((c) => c.cell));
    const unread = input.cells.filter((c) => !read.has(c));
    if (unread.length)
      throw nonRetryable(
        'NovaCellUnread',
        `the services read on ${input.target.node} returned no rows for the inventory's cell${unread.length === 1 ? '' : 's'} ${unread.join(', ')} (it read ${[...read].join(', ') || 'none'})`,
        { unread },
      );
    if (report.tooOld.length)
      throw nonRetryable(
        'NovaComputeOlderThanEnvelope',
        `${report.tooOld.map((f) => f.sentence).join('; ')}. Nothing was changed.`,
        { tooOld: report.tooOld.map((f) => ({ host: f.host, cell: f.cell, version: f.version, state: f.state })) },
      );
    const rows = cells.reduce((n, c) => n + c.rows.length, 0);
    return {
      summary: `read ${rows} service records in ${cells.map((c) => c.cell).join(', ')}: ${report.summary}${report.notes.length ? `; ${report.notes.join('; ')}` : ''}`,
      report,
      rowsPerCell: Object.fromEntries(cells.map((c) => [c.cell, c.rows.length])),
      commands,
    };
  }

  /**
   * Deletes the records the operator chose to delete at the hold. Each is looked up first: one
   * already gone is done; one that is up again is not deleted (a host came back: upgrade it
   * instead), and the step says so.
   */
  async function deleteServiceRecords(
    input: DeleteServiceRecordsInput,
  ): Promise<{ summary: string; alreadyDone: boolean; deleted: string[]; commands: CommandRecord[] }> {
    const commands: CommandRecord[] = [];
    const list = parseServiceList((await runRead(runner, input.target, input.listCommand, commands)).stdout);
    // Before compute API 2.53 the list prints the services table's integer ids. They are per
    // cell, and nova's DELETE /os-services/{id} then deletes the first record with that id in
    // any cell (HostAPI.service_get_by_id walks the cells), which may be another host's. The
    // records were read by uuid, so a list without uuids cannot say which is which: refuse.
    const integerIds = list.filter((x) => !UUID.test(String(x.ID)));
    if (integerIds.length)
      throw nonRetryable(
        'NovaServiceListWithoutUuids',
        `the service list printed integer ids (${integerIds
          .slice(0, 3)
          .map((x) => `${String(x.ID)} for ${x.Binary} on ${x.Host}`)
          .join(
            ', ',
          )}): that is compute API 2.52 or older, whose ids are per cell, so a record cannot be deleted safely by them; nothing was deleted. Make the inventory's commands.serviceList ask for 2.53 or later (openstack --os-compute-api-version 2.53 …)`,
      );
    const deleted: string[] = [];
    const gone: string[] = [];
    const up: string[] = [];
    for (const r of input.records) {
      const who = `${r.binary} on ${r.host} (${r.cell}, ${r.ref})`;
      const now = list.find((x) => String(x.ID) === r.ref);
      if (!now) {
        gone.push(who);
        continue;
      }
      if (now.State === 'up') {
        up.push(who);
        continue;
      }
      const command = input.deleteCommands[r.ref];
      if (!command) throw nonRetryable('NovaNoDeleteCommand', `no delete command was rendered for ${who}`);
      await runRead(runner, input.target, command, commands);
      deleted.push(who);
    }
    if (up.length)
      throw nonRetryable(
        'NovaServiceRecordUpAgain',
        `${up.join('; ')} ${up.length === 1 ? 'is' : 'are'} up again, so ${up.length === 1 ? 'it was' : 'they were'} not deleted: add the host to the inventory to upgrade it${deleted.length ? `; deleted ${deleted.join('; ')}` : ''}`,
      );
    const parts = [
      ...(deleted.length ? [`deleted ${deleted.join('; ')}`] : []),
      ...(gone.length ? [`already gone: ${gone.join('; ')}`] : []),
    ];
    return { summary: parts.join('; ') || 'no record to delete', alreadyDone: !deleted.length, deleted, commands };
  }

  return { checkServiceVersions, deleteServiceRecords };
}
