// Requests of 2.5 s in flight through the VIP, as a real cloud has (a large server list). Since
// HAProxy's counters prove a drain with no session at its first reading (0.35-0.46 s on the lab),
// a test that must act while a drain wait runs needs sessions for the wait to wait for.
import { VipProbe } from '../../activities/http/probe';

export function slowRequestsThrough(vipUrl: string, delayMs = 2500): VipProbe {
  const probe = new VipProbe({
    url: vipUrl,
    paths: [`/v2.1/servers?delay_ms=${delayMs}`],
    ratePerSecond: 3,
    clients: 4,
    requestTimeoutMs: Math.max(10_000, delayMs + 5_000),
    maxDurationMs: 20 * 60_000,
  });
  probe.start();
  return probe;
}
