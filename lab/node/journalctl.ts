// journalctl -u UNIT [-n N]: the unit's own output, which is all the lab keeps of a journal.
import { nodeEnv, readTextOr } from './env';
import { normalizeUnit } from './units';

export function main(argv: string[]): void {
  const env = nodeEnv();
  let unit = '';
  let lines = 10;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-u' || a === '--unit') unit = normalizeUnit(argv[++i] ?? '');
    else if (a.startsWith('--unit=')) unit = normalizeUnit(a.slice(7));
    else if (a === '-n' || a === '--lines') lines = Number(argv[++i]) || 10;
    else if (a.startsWith('--lines=')) lines = Number(a.slice(8)) || 10;
  }
  if (!unit) return void process.stdout.write('-- No entries --\n');
  const out = readTextOr(env.node.unitLog(unit), '').split('\n').filter(Boolean).slice(-lines);
  process.stdout.write(out.length ? `${out.join('\n')}\n` : '-- No entries --\n');
}
