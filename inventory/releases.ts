// nova's releases as nova itself records them: series, date, SLURP, and the service-version
// envelope each release enforces. Pure data and lookups, so the inventory check, the dry-run plan
// and the workflow can all use it.
//
// Where the numbers come from (read with git from openstack/nova and openstack/releases):
// - serviceVersion, alias, oldestSupported: nova/objects/service.py (SERVICE_VERSION,
//   SERVICE_VERSION_ALIASES, OLDEST_SUPPORTED_SERVICE_VERSION) at the X.0.0 tag. All three are
//   unchanged across every later point release of the same series (checked at each tag from 27.0.0
//   to 33.0.2: 27.x 66, 28.x 66, 29.x 67, 30.x 67, 31.x 68, 32.x 70, 33.x 72).
// - maxMicroversion: _MAX_API_VERSION in nova/api/openstack/api_version_request.py at X.0.0; the
//   same as doc/api_samples/versions in lab/fixtures/nova-versions/.
// - date: the tagger date of the annotated X.0.0 tag, which is also `initial-release` in
//   openstack/releases data/series_status.yaml (commit 02df7c9a3cc3, 2026-08-21).
// - 34.0.0 is newer than the git snapshot: its numbers come from the released package (see its row).
// - slurp: `slurp: yes` in that series_status.yaml, and the series' prelude release note in nova
//   (releasenotes/notes/<name>-prelude-*.yaml: "is a Skip-Level-Upgrade Release" or "is not").
//
// To add a release: read those four places at its X.0.0 tag and add a row; the tests check the
// rows against each other (aliases, SLURP alternation, dates in order).

export interface NovaRelease {
  /** The major of nova's version: 31 for 31.x. */
  major: number;
  /** OpenStack's release id, "2025.1". */
  series: string;
  /** The series name, which is also nova's key in SERVICE_VERSION_ALIASES. */
  name: string;
  /** The day X.0.0 came out (YYYY-MM-DD); the planned day while `released` is false. */
  date: string;
  released: boolean;
  /** A Skip-Level-Upgrade Release Process release: reachable directly from the previous SLURP. */
  slurp: boolean;
  /** SERVICE_VERSION: what every service of this release writes into its services row. */
  serviceVersion: number;
  /** OLDEST_SUPPORTED_SERVICE_VERSION: the alias of the oldest nova-compute this release starts beside. */
  oldestSupported: string;
  /** The highest compute API microversion this release serves. */
  maxMicroversion: string;
}

export const NOVA_RELEASES: readonly NovaRelease[] = [
  // 27.0.0 tag 59c10b7314 (commit 2bb8689835), 2023-03-22: SERVICE_VERSION = 66, OLDEST = 'Yoga',
  // aliases end 'Antelope': 66; _MAX_API_VERSION '2.95'. antelope-prelude-4a99907b00e739f8.yaml:
  // "our first Skip-Level-Upgrade Release ... Next SLURP release will be 2024.1".
  {
    major: 27,
    series: '2023.1',
    name: 'Antelope',
    date: '2023-03-22',
    released: true,
    slurp: true,
    serviceVersion: 66,
    oldestSupported: 'Yoga',
    maxMicroversion: '2.95',
  },
  // 28.0.0 tag 66e35e66d6 (commit 1f60a71e0a), 2023-10-04: 66, OLDEST 'Antelope', 'Bobcat': 66; '2.95'.
  // bobcat-prelude-1bd68dd5133fe4dd.yaml: "a non-Skip-Level-Upgrade Release".
  {
    major: 28,
    series: '2023.2',
    name: 'Bobcat',
    date: '2023-10-04',
    released: true,
    slurp: false,
    serviceVersion: 66,
    oldestSupported: 'Antelope',
    maxMicroversion: '2.95',
  },
  // 29.0.0 tag 89c433a8eb (commit 77de002d61), 2024-04-03: 67, OLDEST 'Antelope', 'Caracal': 66
  // (the alias was added before version 67 landed, so it is one lower than what 29.x writes); '2.96'.
  // caracal-prelude-63fac6e27509930d.yaml: "a Skip-Level-Upgrade Release ... from 2023.1".
  {
    major: 29,
    series: '2024.1',
    name: 'Caracal',
    date: '2024-04-03',
    released: true,
    slurp: true,
    serviceVersion: 67,
    oldestSupported: 'Antelope',
    maxMicroversion: '2.96',
  },
  // 30.0.0 tag db64f49186 (commit 9c36174539), 2024-10-02: 67, OLDEST 'Caracal', 'Dalmatian': 67; '2.96'.
  // dalmatian-prelude-35a774ecc9e56004.yaml: "not a Skip-Level-Upgrade Release".
  {
    major: 30,
    series: '2024.2',
    name: 'Dalmatian',
    date: '2024-10-02',
    released: true,
    slurp: false,
    serviceVersion: 67,
    oldestSupported: 'Caracal',
    maxMicroversion: '2.96',
  },
  // 31.0.0 tag 625bfa0e22 (commit 6042300453), 2025-04-02: 68, OLDEST 'Caracal', 'Epoxy': 68; '2.100'.
  // epoxy-prelude-f164cc03b742cfc5.yaml: "a Skip-Level-Upgrade Release ... from 2024.1 Caracal".
  {
    major: 31,
    series: '2025.1',
    name: 'Epoxy',
    date: '2025-04-02',
    released: true,
    slurp: true,
    serviceVersion: 68,
    oldestSupported: 'Caracal',
    maxMicroversion: '2.100',
  },
  // 32.0.0 tag f15f8923c5 (commit 759e03c35d), 2025-10-01: 70, OLDEST 'Epoxy', 'Flamingo': 70; '2.100'.
  // flamingo-prelude-22a2782315ce0808.yaml: "not a Skip-Level-Upgrade Release".
  {
    major: 32,
    series: '2025.2',
    name: 'Flamingo',
    date: '2025-10-01',
    released: true,
    slurp: false,
    serviceVersion: 70,
    oldestSupported: 'Epoxy',
    maxMicroversion: '2.100',
  },
  // 33.0.0 tag d82c8fc28b (commit d5c64e7aba), 2026-04-01: 72, OLDEST 'Epoxy', 'Gazpacho': 72; '2.103'.
  // gazpacho-prelude-1c2b533501ce2afd.yaml: "a Skip-Level-Upgrade Release ... from 2025.1 Epoxy".
  {
    major: 33,
    series: '2026.1',
    name: 'Gazpacho',
    date: '2026-04-01',
    released: true,
    slurp: true,
    serviceVersion: 72,
    oldestSupported: 'Epoxy',
    maxMicroversion: '2.103',
  },
  // 34.0.0, 2026.2 Hibiscus (doc/source/admin/concurrency.rst on master: "nova 34.0.0 (2026.2
  // Hibiscus)"). Its tag is newer than the git snapshot read (master 00a030403f, 2026-08-21), so the
  // numbers come from the released nova 34.0.0 package itself (pbr.json: git_version 5e835dee08,
  // is_release true), nova/objects/service.py: SERVICE_VERSION = 74, OLDEST 'Gazpacho',
  // 'Hibiscus': 74; api_version_request.py '2.104'. Non-SLURP: no `slurp:` key for hibiscus in
  // series_status.yaml. The date is that file's planned initial-release; the actual day is unchecked.
  {
    major: 34,
    series: '2026.2',
    name: 'Hibiscus',
    date: '2026-09-30',
    released: true,
    slurp: false,
    serviceVersion: 74,
    oldestSupported: 'Gazpacho',
    maxMicroversion: '2.104',
  },
];

/**
 * SERVICE_VERSION_ALIASES as nova 34.0.0 ships it (nova/objects/service.py; the same as tag 33.0.0
 * plus 'Hibiscus': 74). Victoria to Zed predate the table above and appear only as aliases.
 */
export const SERVICE_VERSION_ALIASES: Readonly<Record<string, number>> = {
  Victoria: 52,
  Wallaby: 54,
  Xena: 57,
  Yoga: 61,
  Zed: 64,
  Antelope: 66,
  Bobcat: 66,
  Caracal: 66,
  Dalmatian: 67,
  Epoxy: 68,
  Flamingo: 70,
  Gazpacho: 72,
  Hibiscus: 74,
};

/**
 * The compute RPC version each service version speaks: SERVICE_VERSION_HISTORY in
 * nova/objects/service.py (master 00a030403f up to 73, the 34.0.0 package for 74; entries are only
 * ever appended). With
 * `[upgrade_levels] compute = auto` nova caps compute RPC at the entry of the minimum nova-compute
 * service version (nova/compute/rpcapi.py, _determine_version_cap).
 */
export const COMPUTE_RPC_BY_SERVICE_VERSION: Readonly<Record<number, string>> = {
  52: '5.11',
  53: '5.12',
  54: '5.13',
  55: '5.13',
  56: '6.0',
  57: '6.0',
  58: '6.0',
  59: '6.0',
  60: '6.0',
  61: '6.0',
  62: '6.0',
  63: '6.0',
  64: '6.1',
  65: '6.1',
  66: '6.2',
  67: '6.3',
  68: '6.4',
  69: '6.4',
  70: '6.4',
  71: '6.5',
  72: '6.5',
  73: '6.5',
  74: '6.5',
};

/**
 * nova's `[DEFAULT] service_down_time` default (nova/conf/service.py): a service is down after
 * this long without a heartbeat.
 */
export const NOVA_SERVICE_DOWN_SECONDS = 60;

export interface NovaVersion {
  major: number;
  minor: number;
  patch: number;
  /** What follows X.Y.Z: pbr's ".0rc1" or ".dev12", a distribution's "-1ubuntu1"; none for a final release. */
  suffix: string;
}

const VERSION = /^(\d+)\.(\d+)\.(\d+)(.*)$/;

export function parseNovaVersion(version: string): NovaVersion | undefined {
  const m = VERSION.exec(version);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), suffix: m[4] ?? '' };
}

// pbr's pre-releases (".0rc1", ".0b2", ".dev12") come before the final X.Y.Z; anything else after
// the numbers (a packaging revision) comes after it.
function suffixRank(suffix: string): number {
  if (!suffix) return 0;
  return /^(\.0)?(rc|b|a)\d*|^\.dev\d*/.test(suffix) ? -1 : 1;
}

/** Orders two nova versions: negative when a comes first. Unparseable versions sort as equal. */
export function compareNovaVersions(a: string, b: string): number {
  const x = parseNovaVersion(a);
  const y = parseNovaVersion(b);
  if (!x || !y) return 0;
  return (
    x.major - y.major ||
    x.minor - y.minor ||
    x.patch - y.patch ||
    suffixRank(x.suffix) - suffixRank(y.suffix) ||
    (x.suffix === y.suffix ? 0 : x.suffix < y.suffix ? -1 : 1)
  );
}

export function releaseOfMajor(major: number): NovaRelease | undefined {
  return NOVA_RELEASES.find((r) => r.major === major);
}

/** The series a version belongs to, by its major: 31.3.1 → 2025.1 Epoxy. */
export function releaseOf(version: string): NovaRelease | undefined {
  const v = parseNovaVersion(version);
  return v ? releaseOfMajor(v.major) : undefined;
}

/** "31.x (2025.1 Epoxy)". */
export function releaseLabel(r: NovaRelease): string {
  return `${r.major}.x (${r.series} ${r.name})`;
}

/** "2025.1 Epoxy". */
export function seriesLabel(r: NovaRelease): string {
  return `${r.series} ${r.name}`;
}

/** The lowest nova-compute service version this release's control services start beside. */
export function oldestSupportedServiceVersion(r: NovaRelease): number {
  const v = SERVICE_VERSION_ALIASES[r.oldestSupported];
  if (v === undefined)
    throw new Error(
      `nova ${r.major}.x names ${r.oldestSupported} as its oldest supported release, which has no service version alias`,
    );
  return v;
}

export function computeRpcOf(serviceVersion: number): string | undefined {
  return COMPUTE_RPC_BY_SERVICE_VERSION[serviceVersion];
}

/** Names what wrote a service version: "68 (nova 31.x, 2025.1 Epoxy)", "64 (Zed)". */
export function describeServiceVersion(v: number): string {
  const writers = NOVA_RELEASES.filter((r) => r.serviceVersion === v);
  if (writers.length) return `${v} (nova ${writers.map((r) => `${r.major}.x, ${seriesLabel(r)}`).join(', or ')})`;
  const alias = Object.entries(SERVICE_VERSION_ALIASES).find(
    ([name, n]) => n === v && !NOVA_RELEASES.some((r) => r.name === name),
  );
  if (alias) return `${v} (${alias[0]})`;
  const first = NOVA_RELEASES[0]!;
  if (v < first.serviceVersion) return `${v} (older than nova ${releaseLabel(first)})`;
  const before = [...NOVA_RELEASES].reverse().find((r) => r.serviceVersion < v);
  const after = NOVA_RELEASES.find((r) => r.serviceVersion > v);
  if (before && after) return `${v} (a build between nova ${before.major}.x and ${after.major}.x)`;
  return `${v} (newer than any nova release this tool knows)`;
}
