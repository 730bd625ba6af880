// Reads `nova-manage db online_data_migrations` output: "N rows matched query M, K migrated"
// lines, "Error attempting to run <function M at 0x…>" lines, then a PrettyTable
// (Migration | Total Needed | Completed) of the batch.

export interface MigrationRow {
  migration: string;
  totalNeeded: number;
  completed: number;
}

export interface OnlineMigrationsOutput {
  rows: MigrationRow[];
  /** The table as printed, for an operator's eyes. */
  table: string;
  /** Migrations nova reported an exception for. */
  errors: string[];
}

export function parseOnlineMigrationsOutput(output: string): OnlineMigrationsOutput {
  const lines = output.split(/\r?\n/);
  const rows: MigrationRow[] = [];
  const tableLines: string[] = [];
  let header: string[] | undefined;
  for (const line of lines) {
    const t = line.trimEnd();
    if (/^\+[-+]+\+$/.test(t)) {
      tableLines.push(t);
      continue;
    }
    if (!t.startsWith('|')) continue;
    tableLines.push(t);
    const cells = t
      .slice(1, -1)
      .split('|')
      .map((c) => c.trim());
    if (!header) {
      header = cells;
      continue;
    }
    const [migration, total, done] = cells;
    if (migration && /^\d+$/.test(total ?? '') && /^\d+$/.test(done ?? '')) {
      rows.push({ migration, totalNeeded: Number(total), completed: Number(done) });
    }
  }
  const errors = lines.flatMap((l) => {
    const m = /^Error attempting to run (?:<function )?([A-Za-z0-9_.]+)/.exec(l.trim());
    return m ? [m[1]!] : [];
  });
  return { rows, table: tableLines.join('\n'), errors };
}
