// Which release pairs nova supports, and what a skip-level run does differently from an N+1 one.
// Pure: the inventory check refuses a pair with checkReleasePair, the dry-run plan and the workflow
// read describeJump.
//
// nova's rules (doc/source/admin/upgrades.rst; nova/objects/service.py; the prelude release notes
// of each series since 2023.1):
// - N → N+1 always;
// - N → N+2 only from one SLURP release to the next (2023.1 → 2024.1 → 2025.1 → 2026.1), where
//   computes of N run beside control services of N+2 for the window;
// - never backwards: nova's databases have no downgrade migrations.
import {
  NOVA_RELEASES,
  compareNovaVersions,
  computeRpcOf,
  oldestSupportedServiceVersion,
  parseNovaVersion,
  releaseLabel,
  releaseOf,
  releaseOfMajor,
  seriesLabel,
  type NovaRelease,
} from './releases';

export type JumpKind = 'stable-update' | 'N+1' | 'skip-level';

export const FFU_WORKAROUND = '[workarounds]disable_compute_service_check_for_ffu';

export interface ReleaseProblem {
  field: 'release.from' | 'release.to';
  message: string;
}

function known(): string {
  const first = NOVA_RELEASES[0]!;
  const last = NOVA_RELEASES[NOVA_RELEASES.length - 1]!;
  return `${releaseLabel(first)} to ${releaseLabel(last)}`;
}

/** "a", "a and b", "a, b and c". */
export function listed(items: string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

function notSlurp(...releases: NovaRelease[]): string {
  const not = releases.filter((r) => !r.slurp);
  return `${listed(not.map(seriesLabel))} ${not.length === 1 ? 'is not a SLURP release' : 'are not SLURP releases'}`;
}

/** The releases to stop at between two series, fewest first: 28 → 32 stops at 29 and 31. */
export function upgradePath(from: NovaRelease, to: NovaRelease): NovaRelease[] | undefined {
  // Breadth-first over nova's allowed steps; the table is a handful of rows.
  const previous = new Map<number, number>([[from.major, from.major]]);
  const queue = [from];
  while (queue.length) {
    const at = queue.shift()!;
    if (at.major === to.major) break;
    const next = [releaseOfMajor(at.major + 1), at.slurp ? releaseOfMajor(at.major + 2) : undefined].filter(
      (r): r is NovaRelease => !!r && (r.major === at.major + 1 || r.slurp) && r.major <= to.major,
    );
    for (const r of next) {
      if (previous.has(r.major)) continue;
      previous.set(r.major, at.major);
      queue.push(r);
    }
  }
  if (!previous.has(to.major)) return undefined;
  const stops: NovaRelease[] = [];
  for (let m = previous.get(to.major)!; m !== from.major; m = previous.get(m)!) stops.unshift(releaseOfMajor(m)!);
  return stops;
}

/**
 * The one sentence that refuses a release pair, or undefined when nova supports it. Versions
 * that do not parse are left to the schema's own message.
 */
export function checkReleasePair(from: string, to: string): ReleaseProblem | undefined {
  const f = parseNovaVersion(from);
  const t = parseNovaVersion(to);
  if (!f || !t) return undefined;
  const order = compareNovaVersions(from, to);
  if (order === 0)
    return {
      field: 'release.to',
      message: `${to} is the same release as release.from, so there is nothing to upgrade`,
    };
  if (order > 0)
    return {
      field: 'release.to',
      message: `${to} is older than release.from ${from}, and nova cannot be downgraded (its databases have no downgrade migrations)`,
    };
  const fr = releaseOfMajor(f.major);
  if (!fr)
    return {
      field: 'release.from',
      message: `nova ${f.major}.x is not in this tool's release model, which knows ${known()}`,
    };
  const tr = releaseOfMajor(t.major);
  if (!tr)
    return {
      field: 'release.to',
      message: `nova ${t.major}.x is not in this tool's release model, which knows ${known()}`,
    };
  const distance = tr.major - fr.major;
  if (distance <= 1) return undefined;
  if (distance === 2 && fr.slurp && tr.slurp) return undefined;
  const skipped = NOVA_RELEASES.filter((r) => r.major > fr.major && r.major < tr.major);
  const stops = upgradePath(fr, tr) ?? [];
  const why =
    distance === 2
      ? `nova skips a release only from one SLURP release to the next, and ${notSlurp(fr, tr)}`
      : 'nova supports N+1, or N+2 from one SLURP release to the next';
  return {
    field: 'release.to',
    message: `${from} → ${to} skips ${listed(skipped.map(seriesLabel))}, but ${why}; upgrade through ${stops.map(releaseLabel).join(' then ')} first`,
  };
}

export interface JumpDescription {
  kind: JumpKind;
  from: string;
  to: string;
  /** One line for the head of the plan. */
  summary: string;
  /** Series never installed on the way (skip-level only). */
  skipped: string[];
  envelope: {
    /** What the computes write into their services rows before the run. */
    fromServiceVersion: number;
    /** What every service writes once it runs `to`. */
    toServiceVersion: number;
    /** The oldest nova-compute `to` starts beside: OLDEST_SUPPORTED_SERVICE_VERSION and its alias value. */
    oldestSupported: string;
    oldestSupportedServiceVersion: number;
    /** Compute RPC with `[upgrade_levels] compute = auto` until the last compute runs `to`, and after. */
    computeRpcDuringWindow: string;
    computeRpcAfter: string;
  };
  /** Whether control services of `to` would refuse computes still on `from` without the workaround. */
  ffuWorkaround: { option: typeof FFU_WORKAROUND; needed: boolean; why: string };
  /** What this run does differently from an N+1 run, one sentence each; empty for N+1. */
  differences: string[];
}

/**
 * The kind of jump and what differs from the N+1 runbook. Only for pairs checkReleasePair
 * accepts (the inventory check ran first); any other pair throws its refusal.
 */
export function describeJump(from: string, to: string): JumpDescription {
  const problem = checkReleasePair(from, to);
  if (problem) throw new Error(`${problem.field}: ${problem.message}`);
  const fr = releaseOf(from);
  const tr = releaseOf(to);
  if (!fr || !tr) throw new Error(`release: ${from} → ${to} is not a pair of nova versions`);
  const kind: JumpKind = fr.major === tr.major ? 'stable-update' : tr.major - fr.major === 1 ? 'N+1' : 'skip-level';
  const oldest = oldestSupportedServiceVersion(tr);
  const rpcDuring = computeRpcOf(fr.serviceVersion) ?? `the RPC of service version ${fr.serviceVersion}`;
  const rpcAfter = computeRpcOf(tr.serviceVersion) ?? `the RPC of service version ${tr.serviceVersion}`;
  const needed = fr.serviceVersion < oldest;
  const ffuWorkaround: JumpDescription['ffuWorkaround'] = {
    option: FFU_WORKAROUND,
    needed,
    why: needed
      ? `computes on ${from} write service version ${fr.serviceVersion}, below the ${oldest} (${tr.oldestSupported}) that nova ${to} starts beside, so its conductors and nova-api would refuse to start until the last compute runs ${to}`
      : `computes on ${from} write service version ${fr.serviceVersion}, and nova ${to} starts beside computes down to ${oldest} (${tr.oldestSupported})`,
  };
  const skipped = NOVA_RELEASES.filter((r) => r.major > fr.major && r.major < tr.major);
  const differences: string[] = [];
  if (kind === 'skip-level') {
    differences.push(
      `${listed(skipped.map(seriesLabel))} ${skipped.length === 1 ? 'is' : 'are'} never installed: nova supports N+2 from ${seriesLabel(fr)} to ${seriesLabel(tr)} because both are SLURP releases`,
      `nova-manage api_db sync and db sync apply the schema migrations of ${listed([...skipped, tr].map((r) => `${r.major}.x`))} in one run`,
      `computes on ${fr.major}.x (N-2, service version ${fr.serviceVersion}) run beside control services on ${to} until their batch, which nova ${to} accepts down to ${oldest} (${tr.oldestSupported})`,
      needed
        ? `${FFU_WORKAROUND} = True is set on the control services for the window and removed after the last compute runs ${to}, because ${ffuWorkaround.why}`
        : `${FFU_WORKAROUND} stays unset: ${ffuWorkaround.why}; only a compute record older than ${oldest} would make them refuse, and the service-version preflight reports any before anything changes`,
      `the upgrade sections of the release notes of ${listed([...skipped, tr].map((r) => `${r.major}.0.0`))} all apply, not only those of ${tr.major}.0.0`,
    );
  } else if (needed) {
    // No release in the table needs this for N+1; kept so a new row cannot slip past silently.
    differences.push(
      `${FFU_WORKAROUND} = True is set on the control services for the window and removed after the last compute runs ${to}, because ${ffuWorkaround.why}`,
    );
  }
  const summaries: Record<JumpKind, string> = {
    'stable-update': `stable update within ${seriesLabel(tr)}: ${from} → ${to}`,
    'N+1': `N+1: ${from} (${seriesLabel(fr)}) → ${to} (${seriesLabel(tr)})`,
    'skip-level': `skip-level (SLURP, N+2): ${from} (${seriesLabel(fr)}) → ${to} (${seriesLabel(tr)}), skipping ${listed(skipped.map(seriesLabel))}`,
  };
  return {
    kind,
    from,
    to,
    summary: summaries[kind],
    skipped: skipped.map(seriesLabel),
    envelope: {
      fromServiceVersion: fr.serviceVersion,
      toServiceVersion: tr.serviceVersion,
      oldestSupported: tr.oldestSupported,
      oldestSupportedServiceVersion: oldest,
      computeRpcDuringWindow: rpcDuring,
      computeRpcAfter: rpcAfter,
    },
    ffuWorkaround,
    differences,
  };
}
