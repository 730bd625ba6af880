// nova's own list of cells, read at the preflight: the db syncs and the online data migrations
// run per cell of the inventory, so a cell that nova maps and the inventory lacks would never be
// synced or migrated while every step reported success.
import type { SshTarget } from '../../common/sshTarget';
import type { CommandRecord } from '../ssh/types';
import { nonRetryable } from '../common';
import { runRead, type NovaDeps } from './common';

export interface NovaCell {
  /** '' for a cell created without --name (CellMapping.name is optional). */
  name: string;
  uuid: string;
  disabled: boolean;
}

/**
 * `nova-manage cell_v2 list_cells` as nova/cmd/manage.py prints it: a PrettyTable with the
 * columns Name, UUID, Transport URL, Database Connection, Disabled, rows sorted by name. The
 * columns are found by their header, so a wider table (or a narrower one) still reads.
 */
export function parseCellList(text: string): NovaCell[] | undefined {
  const rows = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.startsWith('|') && l.endsWith('|'))
    .map((l) =>
      l
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim()),
    );
  const header = rows[0];
  if (!header) return undefined;
  const col = (name: string) => header.indexOf(name);
  const [name, uuid, disabled] = [col('Name'), col('UUID'), col('Disabled')];
  if (name < 0 || uuid < 0) return undefined;
  return rows.slice(1).map((r) => ({
    name: r[name] ?? '',
    uuid: r[uuid] ?? '',
    disabled: disabled >= 0 && r[disabled] === 'True',
  }));
}

export interface CheckCellsInput {
  /** The controller, whose nova.conf reaches the API database. */
  target: SshTarget;
  /** The rendered cellList template. */
  command: string;
  /** The inventory's cells, by name. */
  cells: string[];
  /** The plan's db sync reaches cell0 through every cell's sync (no --local_cell): cell0 need not be listed. */
  cell0SyncedWithEveryCell?: boolean;
}

export interface CheckCellsResult {
  summary: string;
  cells: NovaCell[];
  commands: CommandRecord[];
}

/** nova's fixed cell0 uuid (nova/objects/cell_mapping.py, CellMapping.CELL0_UUID). */
export const CELL0_UUID = '00000000-0000-0000-0000-000000000000';

export function createCellActivities(deps: NovaDeps) {
  const { runner } = deps;

  /** Reads nova's cell mappings and refuses when they and the inventory's cells differ. Changes nothing. */
  async function checkCells(input: CheckCellsInput): Promise<CheckCellsResult> {
    const { target, command } = input;
    const commands: CommandRecord[] = [];
    const out = (await runRead(runner, target, command, commands)).stdout;
    const cells = parseCellList(out);
    if (!cells) {
      throw nonRetryable(
        'NovaCellListUnreadable',
        `\`${command}\` on ${target.node} printed no cell table this tool can read: ${out.slice(0, 200) || '(nothing)'}`,
        { node: target.node, command },
      );
    }
    const known = new Set(input.cells);
    const missing = cells.filter(
      (c) => !known.has(c.name) && !(input.cell0SyncedWithEveryCell && c.uuid === CELL0_UUID),
    );
    const named = new Set(cells.map((c) => c.name));
    const unknown = input.cells.filter((c) => !named.has(c));
    const problems = [
      ...missing.map(
        (c) =>
          `nova has cell ${c.name ? `"${c.name}"` : '(unnamed)'} (${c.uuid}${c.disabled ? ', disabled' : ''}) that the inventory's cells do not list: add it to cells with its config file, or its database is never synced nor migrated`,
      ),
      ...unknown.map(
        (c) =>
          `the inventory's cell "${c}" is not among nova's cells (${cells.map((x) => x.name || x.uuid).join(', ')}): correct its name in cells`,
      ),
    ];
    if (problems.length) {
      throw nonRetryable('NovaCellsDiffer', `${problems.join('; ')} (\`${command}\` on ${target.node})`, {
        node: target.node,
        missing: missing.map((c) => c.name || c.uuid),
        unknown,
      });
    }
    return {
      summary: `nova's cells are the inventory's: ${cells.map((c) => c.name).join(', ')}`,
      cells,
      commands,
    };
  }

  return { checkCells };
}
