// The release model, the release-pair rules and describeJump: pure, no server, no node.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  COMPUTE_RPC_BY_SERVICE_VERSION,
  NOVA_RELEASES,
  SERVICE_VERSION_ALIASES,
  compareNovaVersions,
  describeServiceVersion,
  oldestSupportedServiceVersion,
  releaseOf,
  releaseOfMajor,
} from '../inventory/releases';
import { FFU_WORKAROUND, checkReleasePair, describeJump, upgradePath } from '../inventory/jump';

describe('the release model', () => {
  it('covers 27.x (2023.1) to 34.x (2026.2), one row per major, dates in order', () => {
    expect(NOVA_RELEASES.map((r) => `${r.major} ${r.series} ${r.name}`)).toEqual([
      '27 2023.1 Antelope',
      '28 2023.2 Bobcat',
      '29 2024.1 Caracal',
      '30 2024.2 Dalmatian',
      '31 2025.1 Epoxy',
      '32 2025.2 Flamingo',
      '33 2026.1 Gazpacho',
      '34 2026.2 Hibiscus',
    ]);
    for (let i = 1; i < NOVA_RELEASES.length; i++)
      expect(NOVA_RELEASES[i]!.date > NOVA_RELEASES[i - 1]!.date).toBe(true);
    expect(releaseOf('31.3.1')?.name).toBe('Epoxy');
    expect(releaseOf('34.0.0')?.series).toBe('2026.2');
    expect(releaseOf('26.3.0')).toBeUndefined();
  });

  it('SLURP releases are the .1 series from 2023.1 on, as the release notes say', () => {
    expect(NOVA_RELEASES.filter((r) => r.slurp).map((r) => r.series)).toEqual(['2023.1', '2024.1', '2025.1', '2026.1']);
  });

  it("each release's own alias is at most what it writes, and its oldest supported is the previous SLURP release", () => {
    for (const r of NOVA_RELEASES) {
      expect(SERVICE_VERSION_ALIASES[r.name], r.name).toBeLessThanOrEqual(r.serviceVersion);
      expect(COMPUTE_RPC_BY_SERVICE_VERSION[r.serviceVersion], r.name).toMatch(/^\d+\.\d+$/);
      // nova/objects/service.py: "bump OLDEST_SUPPORTED_SERVICE_VERSION to the previous SLURP release".
      const previousSlurp = [...NOVA_RELEASES].reverse().find((p) => p.slurp && p.major < r.major);
      if (previousSlurp) expect(r.oldestSupported, r.name).toBe(previousSlurp.name);
    }
    expect(releaseOfMajor(27)!.oldestSupported).toBe('Yoga');
    expect(NOVA_RELEASES.map((r) => [r.major, r.serviceVersion, oldestSupportedServiceVersion(r)])).toEqual([
      [27, 66, 61],
      [28, 66, 66],
      [29, 67, 66],
      [30, 67, 66],
      [31, 68, 66],
      [32, 70, 68],
      [33, 72, 68],
      [34, 74, 72],
    ]);
  });

  it('agrees with the max microversion of the real version documents in lab/fixtures/nova-versions', () => {
    let checked = 0;
    for (const r of NOVA_RELEASES) {
      let doc: { versions: Array<{ id: string; version: string }> };
      try {
        doc = JSON.parse(readFileSync(`lab/fixtures/nova-versions/root-${r.major}.0.0.json`, 'utf8'));
      } catch {
        continue;
      }
      expect(doc.versions.find((v) => v.id === 'v2.1')!.version, `${r.major}.0.0`).toBe(r.maxMicroversion);
      checked++;
    }
    expect(checked).toBe(5); // 27, 29, 30, 31, 33
  });

  it('orders versions numerically, release candidates before the release', () => {
    const sorted = ['31.10.0', '31.0.0', '32.0.0', '31.9.1', '31.0.0.0rc1', '31.0.1', '30.3.0'].sort(
      compareNovaVersions,
    );
    expect(sorted).toEqual(['30.3.0', '31.0.0.0rc1', '31.0.0', '31.0.1', '31.9.1', '31.10.0', '32.0.0']);
  });

  it('names what wrote a service version', () => {
    expect(describeServiceVersion(68)).toBe('68 (nova 31.x, 2025.1 Epoxy)');
    expect(describeServiceVersion(67)).toBe('67 (nova 29.x, 2024.1 Caracal, or 30.x, 2024.2 Dalmatian)');
    expect(describeServiceVersion(64)).toBe('64 (Zed)');
    expect(describeServiceVersion(69)).toBe('69 (a build between nova 31.x and 32.x)');
    expect(describeServiceVersion(40)).toBe('40 (older than nova 27.x (2023.1 Antelope))');
  });
});

describe('release pairs', () => {
  it('accepts N+1, SLURP to SLURP, and a stable update', () => {
    for (const [from, to] of [
      ['30.0.0', '31.0.0'],
      ['31.0.0', '32.0.0'],
      ['33.0.2', '34.0.0'],
      ['27.5.1', '29.0.0'],
      ['29.4.0', '31.0.0'],
      ['31.3.1', '33.0.0'],
      ['31.0.0', '31.3.1'],
      ['31.0.0.0rc1', '31.0.0'],
    ] as const) {
      expect(checkReleasePair(from, to), `${from} → ${to}`).toBeUndefined();
    }
  });

  it('refuses a downgrade', () => {
    expect(checkReleasePair('30.0.0', '29.0.0')).toEqual({
      field: 'release.to',
      message:
        '29.0.0 is older than release.from 30.0.0, and nova cannot be downgraded (its databases have no downgrade migrations)',
    });
    expect(checkReleasePair('31.1.0', '31.0.1')?.message).toBe(
      '31.0.1 is older than release.from 31.1.0, and nova cannot be downgraded (its databases have no downgrade migrations)',
    );
  });

  it('refuses an equal release', () => {
    expect(checkReleasePair('31.0.0', '31.0.0')).toEqual({
      field: 'release.to',
      message: '31.0.0 is the same release as release.from, so there is nothing to upgrade',
    });
  });

  it('refuses N+2 unless from one SLURP release to the next, and says where to stop', () => {
    expect(checkReleasePair('30.0.0', '32.0.0')).toEqual({
      field: 'release.to',
      message:
        '30.0.0 → 32.0.0 skips 2025.1 Epoxy, but nova skips a release only from one SLURP release to the next, and 2024.2 Dalmatian and 2025.2 Flamingo are not SLURP releases; upgrade through 31.x (2025.1 Epoxy) first',
    });
  });

  it('refuses N+3 and more, with the shortest path', () => {
    expect(checkReleasePair('29.0.0', '32.0.0')?.message).toBe(
      '29.0.0 → 32.0.0 skips 2024.2 Dalmatian and 2025.1 Epoxy, but nova supports N+1, or N+2 from one SLURP release to the next; upgrade through 31.x (2025.1 Epoxy) first',
    );
    expect(checkReleasePair('27.0.0', '33.0.0')?.message).toBe(
      '27.0.0 → 33.0.0 skips 2023.2 Bobcat, 2024.1 Caracal, 2024.2 Dalmatian, 2025.1 Epoxy and 2025.2 Flamingo, but nova supports N+1, or N+2 from one SLURP release to the next; upgrade through 29.x (2024.1 Caracal) then 31.x (2025.1 Epoxy) first',
    );
    expect(upgradePath(releaseOfMajor(28)!, releaseOfMajor(32)!)!.map((r) => r.major)).toEqual([29, 31]);
  });

  it('refuses a release outside the model, naming the field', () => {
    expect(checkReleasePair('20.0.0', '31.0.0')).toEqual({
      field: 'release.from',
      message:
        "nova 20.x is not in this tool's release model, which knows 27.x (2023.1 Antelope) to 34.x (2026.2 Hibiscus)",
    });
    expect(checkReleasePair('34.0.0', '35.0.0')).toEqual({
      field: 'release.to',
      message:
        "nova 35.x is not in this tool's release model, which knows 27.x (2023.1 Antelope) to 34.x (2026.2 Hibiscus)",
    });
  });
});

describe('describeJump', () => {
  it('N+1 has no differences and no workaround', () => {
    const j = describeJump('30.0.0', '31.0.0');
    expect(j).toMatchObject({
      kind: 'N+1',
      summary: 'N+1: 30.0.0 (2024.2 Dalmatian) → 31.0.0 (2025.1 Epoxy)',
      skipped: [],
      differences: [],
    });
    expect(j.envelope).toEqual({
      fromServiceVersion: 67,
      toServiceVersion: 68,
      oldestSupported: 'Caracal',
      oldestSupportedServiceVersion: 66,
      computeRpcDuringWindow: '6.3',
      computeRpcAfter: '6.4',
    });
    expect(j.ffuWorkaround.needed).toBe(false);
  });

  it('skip-level 31 → 33 says what is skipped, that N-2 computes run beside, and why the workaround stays unset', () => {
    const j = describeJump('31.0.0', '33.0.0');
    expect(j.kind).toBe('skip-level');
    expect(j.summary).toBe(
      'skip-level (SLURP, N+2): 31.0.0 (2025.1 Epoxy) → 33.0.0 (2026.1 Gazpacho), skipping 2025.2 Flamingo',
    );
    expect(j.skipped).toEqual(['2025.2 Flamingo']);
    expect(j.envelope).toEqual({
      fromServiceVersion: 68,
      toServiceVersion: 72,
      oldestSupported: 'Epoxy',
      oldestSupportedServiceVersion: 68,
      computeRpcDuringWindow: '6.4',
      computeRpcAfter: '6.5',
    });
    expect(j.ffuWorkaround).toEqual({
      option: '[workarounds]disable_compute_service_check_for_ffu',
      needed: false,
      why: 'computes on 31.0.0 write service version 68, and nova 33.0.0 starts beside computes down to 68 (Epoxy)',
    });
    expect(j.differences).toEqual([
      '2025.2 Flamingo is never installed: nova supports N+2 from 2025.1 Epoxy to 2026.1 Gazpacho because both are SLURP releases',
      'nova-manage api_db sync and db sync apply the schema migrations of 32.x and 33.x in one run',
      'computes on 31.x (N-2, service version 68) run beside control services on 33.0.0 until their batch, which nova 33.0.0 accepts down to 68 (Epoxy)',
      '[workarounds]disable_compute_service_check_for_ffu stays unset: computes on 31.0.0 write service version 68, and nova 33.0.0 starts beside computes down to 68 (Epoxy); only a compute record older than 68 would make them refuse, and the service-version preflight reports any before anything changes',
      'the upgrade sections of the release notes of 32.0.0 and 33.0.0 all apply, not only those of 33.0.0',
    ]);
  });

  it("no pair nova supports needs the FFU workaround: every SLURP release's computes are inside the next SLURP's envelope", () => {
    let pairs = 0;
    for (const f of NOVA_RELEASES) {
      for (const t of NOVA_RELEASES) {
        if (checkReleasePair(`${f.major}.0.0`, `${t.major}.0.0`)) continue;
        const j = describeJump(`${f.major}.0.0`, `${t.major}.0.0`);
        expect(j.ffuWorkaround.needed, `${f.major} → ${t.major}`).toBe(false);
        expect(j.differences.some((d) => d.startsWith(`${FFU_WORKAROUND} = True`))).toBe(false);
        pairs++;
      }
    }
    expect(pairs).toBe(7 + 3); // seven N+1 pairs, three SLURP → SLURP
  });

  it('a stable update is its own kind', () => {
    expect(describeJump('31.0.0', '31.3.1')).toMatchObject({
      kind: 'stable-update',
      summary: 'stable update within 2025.1 Epoxy: 31.0.0 → 31.3.1',
      differences: [],
    });
  });

  it('throws the refusal for a pair the inventory would refuse', () => {
    expect(() => describeJump('30.0.0', '29.0.0')).toThrow('release.to: 29.0.0 is older than release.from 30.0.0');
    expect(() => describeJump('30.0.0', '32.0.0')).toThrow('release.to: 30.0.0 → 32.0.0 skips 2025.1 Epoxy');
  });
});
