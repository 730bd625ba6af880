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
// Every type name the code writes, prefixed or not: `type: 'X'` (and `type: c ? 'X' : 'Y'`),
// `nonRetryable('X'` and the values of SSH's table. An unprefixed one fails the prefix check.
const TYPE_AT =
  /(?:type:\s*(?:[\w.]+\s*\?\s*)?|nonRetryable\(\s*|:\s*)'([A-Z][A-Za-z]+)'(?:\s*:\s*'([A-Z][A-Za-z]+)')?/g;
const sshTable = readFileSync('activities/ssh/errors.ts', 'utf8').match(/SshFailureType = \{([^}]*)\}/)![1]!;
const written = new Set([
  ...[
    ...text.matchAll(
      /(?:type:\s*(?:[\w.]+\s*\?\s*)?|nonRetryable\(\s*)'([A-Z][A-Za-z]+)'(?:\s*:\s*'([A-Z][A-Za-z]+)')?/g,
    ),
  ].flatMap((m) => [m[1]!, m[2]].filter((t): t is string => !!t)),
  ...[...sshTable.matchAll(/:\s*'([A-Z][A-Za-z]+)'/g)].map((m) => m[1]!),
]);

it('lists every failure type the code raises, each with its system prefix', () => {
  expect(written.size).toBeGreaterThan(40);
  expect([...written].filter((t) => !/^(Ssh|Haproxy|Lb|Nova|Notify|Probe|Tempest)[A-Z]/.test(t))).toEqual([]);
  expect([...written].filter((t) => !(t in FAILURE_TYPES))).toEqual([]);
  expect(Object.keys(FAILURE_TYPES).filter((t) => !/^(Ssh|Haproxy|Lb|Nova|Notify|Probe|Tempest)[A-Z]/.test(t))).toEqual(
    [],
  );
});

it('lists nothing that the code no longer raises', () => {
  expect(Object.keys(FAILURE_TYPES).filter((t) => !text.includes(`'${t}'`))).toEqual([]);
});

it('would notice an unlisted type', () => {
  const unlisted = "throw ApplicationFailure.create({ type: 'HaproxyNewThing', message: 'x' })";
  const found = [...unlisted.matchAll(TYPE_AT)].map((m) => m[1]!);
  expect(found.filter((t) => !(t in FAILURE_TYPES))).toEqual(['HaproxyNewThing']);
});
