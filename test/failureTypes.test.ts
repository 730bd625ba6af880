// The catalogue (common/failureTypes.ts) and the code cannot drift: every failure type written
// in activities/ or workflows/ is listed, and every listed type is raised somewhere.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { FAILURE_TYPES } from '../common/failureTypes';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const text = ['activities', 'workflows']
  .flatMap(sources)
  .map((p) => readFileSync(p, 'utf8'))
  .join('\n');
// `type: 'X'`, `nonRetryable('X'`, `'X' : 'Y'` and the SSH table's values.
const written = new Set(
  [...text.matchAll(/(?:type: |nonRetryable\(|\? |: )'((?:Ssh|Haproxy|Lb|Nova|Notify|Probe)[A-Za-z]+)'/g)].map(
    (m) => m[1]!,
  ),
);

it('lists every failure type the code raises, each with its system prefix', () => {
  expect(written.size).toBeGreaterThan(40);
  expect([...written].filter((t) => !(t in FAILURE_TYPES))).toEqual([]);
  expect(Object.keys(FAILURE_TYPES).filter((t) => !/^(Ssh|Haproxy|Lb|Nova|Notify|Probe)[A-Z]/.test(t))).toEqual([]);
});

it('lists nothing that the code no longer raises', () => {
  expect(Object.keys(FAILURE_TYPES).filter((t) => !text.includes(`'${t}'`))).toEqual([]);
});

it('would notice an unlisted type', () => {
  const unlisted = "throw ApplicationFailure.create({ type: 'HaproxyNewThing', message: 'x' })";
  const found = [
    ...unlisted.matchAll(/(?:type: |nonRetryable\(|\? |: )'((?:Ssh|Haproxy|Lb|Nova|Notify|Probe)[A-Za-z]+)'/g),
  ].map((m) => m[1]!);
  expect(found.filter((t) => !(t in FAILURE_TYPES))).toEqual(['HaproxyNewThing']);
});
