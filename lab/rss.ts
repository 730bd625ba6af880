// The lab's memory: what every process the lab started holds, summed (MariaDB, RabbitMQ and
// epmd, the uwsgi masters and workers, nova's services, the sshds and their sessions, HAProxy).
// A sampler for a run's peak: `labPeakRss(stateDir)` while an upgrade runs, `stop()` after it.
import { readFileSync } from 'node:fs';
import { backingPids } from './real/backing';
import { labStatus } from './lab';

export interface LabMemory {
  /** Summed VmRSS: pages shared between processes (uwsgi's forked workers) count once per process. */
  rssBytes: number;
  /** Summed Pss (smaps_rollup): shared pages split between their sharers, so the sum is what the lab holds. */
  pssBytes: number;
  processes: number;
}

const kb = (text: string, field: string) => {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : 0;
};

/** Every live process of the lab: its marker or working directory (backingPids), its sshds and HAProxys. */
export function labPids(stateDir: string): number[] {
  const s = labStatus(stateDir);
  const own = [...s.nodes.map((n) => n.sshd), ...s.haproxy.map((h) => h.pid)].filter((p): p is number => !!p);
  return [...new Set([...backingPids(stateDir), ...own])];
}

export function labMemory(stateDir: string): LabMemory {
  let rssBytes = 0;
  let pssBytes = 0;
  let processes = 0;
  for (const pid of labPids(stateDir)) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      let pss = 0;
      try {
        pss = kb(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
      } catch {
        /* a kernel without smaps_rollup: RSS only */
      }
      rssBytes += kb(status, 'VmRSS');
      pssBytes += pss;
      processes++;
    } catch {
      /* gone between the listing and the read */
    }
  }
  return { rssBytes, pssBytes, processes };
}

export interface PeakMemory {
  peakRssBytes: number;
  peakPssBytes: number;
  peakProcesses: number;
  samples: number;
}

/** Samples labMemory every intervalMs until stop(); the peaks of each sum (not necessarily at the same sample). */
export function labPeakRss(stateDir: string, intervalMs = 2000): { stop: () => PeakMemory } {
  const peak: PeakMemory = { peakRssBytes: 0, peakPssBytes: 0, peakProcesses: 0, samples: 0 };
  const sample = () => {
    const m = labMemory(stateDir);
    peak.peakRssBytes = Math.max(peak.peakRssBytes, m.rssBytes);
    peak.peakPssBytes = Math.max(peak.peakPssBytes, m.pssBytes);
    peak.peakProcesses = Math.max(peak.peakProcesses, m.processes);
    peak.samples++;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return { ...peak };
    },
  };
}
