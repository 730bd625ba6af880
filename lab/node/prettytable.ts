// Python's PrettyTable as nova-manage, nova-status and the openstack CLI print it, down to
// where the odd space goes when centring, because parsers downstream read it back.

export interface TableOptions {
  align?: 'c' | 'l';
  /** 'all' rules between rows (oslo.upgradecheck); 'frame' only around the header and table. */
  hrules?: 'frame' | 'all';
}

function justify(text: string, width: number, align: 'c' | 'l'): string {
  const excess = width - text.length;
  if (align === 'l') return text + ' '.repeat(excess);
  const half = Math.floor(excess / 2);
  if (excess % 2 === 0) return ' '.repeat(half) + text + ' '.repeat(half);
  // str.center's rule: odd-length text gets the extra space on the right, even on the left.
  return text.length % 2
    ? ' '.repeat(half) + text + ' '.repeat(half + 1)
    : ' '.repeat(half + 1) + text + ' '.repeat(half);
}

export function prettyTable(header: string[], rows: Array<Array<string | number>>, opts: TableOptions = {}): string {
  const align = opts.align ?? 'c';
  const cells = rows.map((r) => r.map((c) => String(c).split('\n')));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.flatMap((r) => r[i]!.map((l) => l.length))));
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const line = (parts: string[]) => `| ${parts.map((p, i) => justify(p, widths[i]!, align)).join(' | ')} |`;
  const out = [rule, line(header), rule];
  cells.forEach((r, ri) => {
    const height = Math.max(...r.map((c) => c.length));
    for (let k = 0; k < height; k++) out.push(line(r.map((c) => c[k] ?? '')));
    if (opts.hrules === 'all' || ri === cells.length - 1) out.push(rule);
  });
  if (!cells.length) out.push(rule);
  return out.join('\n');
}

/** Python's textwrap.wrap for plain prose: greedy, breaking on spaces. */
export function wrap(text: string, width: number, subsequentIndent = ''): string[] {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    const indent = lines.length ? subsequentIndent : '';
    if (!cur) cur = indent + w;
    else if (cur.length + 1 + w.length <= width) cur += ` ${w}`;
    else {
      lines.push(cur);
      cur = subsequentIndent + w;
    }
  }
  if (cur) lines.push(cur);
  return lines;
}
