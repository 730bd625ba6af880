// Reads `nova-status upgrade check` the way oslo.upgradecheck prints it: a one-column
// PrettyTable with a rule between rows, each cell "Check: X\nResult: Y\nDetails: Z" and the
// details wrapped at 60 columns with a two-space hanging indent. `--json` output is read too.

export type CheckResult = 'Success' | 'Warning' | 'Failure';

export interface UpgradeCheck {
  /** The check's title, e.g. "Cells v2". */
  name: string;
  result: CheckResult;
  details: string | null;
}

const RESULT_BY_CODE: Record<number, CheckResult> = { 0: 'Success', 1: 'Warning', 2: 'Failure' };

export function parseUpgradeCheckOutput(output: string): UpgradeCheck[] {
  const json = parseJsonChecks(output);
  if (json) return json;
  const cells: string[][] = [];
  let cell: string[] = [];
  for (const raw of output.split(/\r?\n/)) {
    const line = raw.trimEnd();
    if (/^\+-+\+$/.test(line)) {
      if (cell.length) cells.push(cell);
      cell = [];
    } else if (line.startsWith('|') && line.endsWith('|')) {
      cell.push(line.slice(1, -1).trim());
    }
  }
  if (cell.length) cells.push(cell);
  const checks: UpgradeCheck[] = [];
  for (const lines of cells) {
    const check = /^Check: (.*)$/.exec(lines[0] ?? '');
    const result = /^Result: (Success|Warning|Failure)$/.exec(lines[1] ?? '');
    const details = /^Details: (.*)$/.exec(lines[2] ?? '');
    if (!check || !result || !details) continue;
    const text = [details[1]!, ...lines.slice(3)].join(' ').trim();
    checks.push({ name: check[1]!.trim(), result: result[1] as CheckResult, details: text === 'None' ? null : text });
  }
  return checks;
}

function parseJsonChecks(output: string): UpgradeCheck[] | undefined {
  const start = output.indexOf('{');
  if (start < 0) return undefined;
  try {
    const doc = JSON.parse(output.slice(start)) as {
      checks?: Array<{ check: string; result: number; details: string | null }>;
    };
    if (!Array.isArray(doc.checks)) return undefined;
    return doc.checks.map((c) => ({
      name: c.check,
      result: RESULT_BY_CODE[c.result] ?? 'Failure',
      details: c.details ?? null,
    }));
  } catch {
    return undefined;
  }
}
