// A fleet's nodes kept compact in the workflow input, and expanded again in the workflow. The
// normalized inventory carries every node in full (~270 bytes a compute): 2.69 MiB at 10,000
// computes, past Temporal's 2 MiB payload limit near 7,800. Fleets are written as ranges (cmp001
// … cmp400 at 10.1.0.1 …, every other field the same), so a run of such nodes is sent as its
// first node and a count. Pure and deterministic (workflow code expands it): no node APIs here.
import type { Inventory, Node } from '../inventory/schema';

/** `count` nodes: the first as the inventory normalized it, each next one's `steps` fields stepped by one. */
export interface NodeRun {
  first: Node;
  count: number;
  /**
   * The fields that step in this run (the name always does), each with which of its numbers
   * steps (0: the first; an address steps whole); absent for a run of one.
   */
  steps?: Partial<Record<Stepped, number>>;
}

/** The normalized inventory with its nodes as runs, in the inventory's order. */
export type CompactInventory = Omit<Inventory, 'nodes'> & { nodeRuns: NodeRun[] };

/**
 * From this many nodes on, the CLI sends the inventory compact. Below it the input is small
 * anyway (100 computes: ~27 KiB), and stays readable as it always was in the Web UI's input.
 */
export const COMPACT_FROM_NODES = 100;

/** The fields that may step from one node of a run to the next; every other field is equal. */
const STEPPED = ['name', 'address', 'novaHost', 'sshHost'] as const;
export type Stepped = (typeof STEPPED)[number];

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * `s` moved on by `k`: an IPv4 address as a number (10.0.0.255 + 1 = 10.0.1.0); otherwise its
 * `at`-th number (0: the first, the default), keeping its zero padding (cmp009 + 1 = cmp010,
 * cmp9 + 1 = cmp10). Undefined when `s` has no such number or the step would leave IPv4.
 */
export function stepBy(s: string, k: number, at = 0): string | undefined {
  const ip = IPV4.exec(s);
  if (ip) {
    const octets = ip.slice(1).map(Number);
    if (octets.some((o) => o > 255)) return undefined;
    const v = octets.reduce((a, o) => a * 256 + o, 0) + k;
    if (v > 0xffffffff) return undefined;
    return [24, 16, 8, 0].map((shift) => Math.floor(v / 2 ** shift) % 256).join('.');
  }
  let seen = -1;
  let out: string | undefined;
  const replaced = s.replace(/\d+/g, (digits) => {
    seen += 1;
    if (seen !== at) return digits;
    const n = Number(digits) + k;
    if (!Number.isSafeInteger(n)) return digits;
    const width = digits.length > 1 && digits.startsWith('0') ? digits.length : 0;
    return (out = String(n).padStart(width, '0'));
  });
  return out === undefined ? undefined : replaced;
}

/** Which number of `a` stepped by `k` gives `b` (0 for an address), if any. */
function stepOf(a: string, b: string, k: number): number | undefined {
  const numbers = IPV4.test(a) ? 1 : (a.match(/\d+/g)?.length ?? 0);
  for (let at = 0; at < numbers; at++) if (stepBy(a, k, at) === b) return at;
  return undefined;
}

/** Stands for the node's name inside its other fields; JSON text never holds a raw NUL. */
const NAME = '\u0000';
const escaped = (name: string) => JSON.stringify(name).slice(1, -1);

/**
 * Everything of a node but the stepped fields, as one comparable string, its own name in it
 * replaced by NAME: a per-node path (`/srv/nodes/vc7/nova-cpu.conf`) is then the same in a run.
 */
function rest(n: Node): string {
  const copy: Partial<Node> = { ...n };
  for (const f of STEPPED) delete copy[f];
  return JSON.stringify(copy).split(escaped(n.name)).join(NAME);
}

/** Whether `next` is `first` stepped by `k`: each stepped field the same as first's or stepped by k. */
function follows(first: Node, firstRest: string, next: Node, k: number, modes: Map<Stepped, number | false>): boolean {
  for (const f of STEPPED) {
    const a = first[f];
    const b = next[f];
    if (a === undefined || b === undefined) {
      if (a !== b) return false;
      continue;
    }
    const at = modes.get(f);
    if (at === undefined) {
      // The run's second node decides whether this field stays or which of its numbers steps.
      const found = b === a ? false : stepOf(a, b, k);
      if (found === undefined) return false;
      modes.set(f, found);
    } else if (b !== (at === false ? a : stepBy(a, k, at))) return false;
  }
  // Names must differ; the inventory's check refuses duplicates, this keeps expansion honest.
  return modes.get('name') !== false && rest(next) === firstRest;
}

/** The nodes as runs, in order. `expandNodeRuns(compactNodes(x))` is `x`. */
export function compactNodes(nodes: Node[]): NodeRun[] {
  const runs: NodeRun[] = [];
  let i = 0;
  while (i < nodes.length) {
    const first = nodes[i]!;
    const firstRest = rest(first);
    const modes = new Map<Stepped, number | false>();
    let count = 1;
    while (i + count < nodes.length && follows(first, firstRest, nodes[i + count]!, count, modes)) count += 1;
    const steps: NodeRun['steps'] = {};
    for (const f of STEPPED) {
      const at = modes.get(f);
      if (at !== undefined && at !== false) steps[f] = at;
    }
    runs.push(count > 1 ? { first, count, steps } : { first, count });
    i += count;
  }
  return runs;
}

/** The nodes again, in order: each run's `steps` fields stepped from its first node. */
export function expandNodeRuns(runs: NodeRun[]): Node[] {
  const out: Node[] = [];
  for (const { first, count, steps } of runs) {
    out.push(first);
    if (count < 2) continue;
    const template = rest(first);
    const named = template.includes(NAME);
    for (let k = 1; k < count; k++) {
      const name = stepBy(first.name, k, steps?.name);
      if (name === undefined) throw new Error(`node run from ${first.name}: its name cannot step by ${k}`);
      // The other fields, with this node's name where the first node's stood.
      const node: Node = named
        ? { ...first, ...(JSON.parse(template.split(NAME).join(escaped(name))) as Partial<Node>) }
        : { ...first };
      for (const [f, at] of Object.entries(steps ?? {}) as [Stepped, number][]) {
        const v = first[f];
        const stepped = v === undefined ? undefined : stepBy(v, k, at);
        // Never: compactNodes only steps a field that stepped. A broken input must not pass quietly.
        if (stepped === undefined) throw new Error(`node run from ${first.name}: ${f} "${v}" cannot step by ${k}`);
        node[f] = stepped;
      }
      out.push(node);
    }
  }
  return out;
}

/** The inventory with its nodes as runs, for the workflow input of a fleet. */
export function compactInventory(inv: Inventory): CompactInventory {
  const { nodes, ...rest } = inv;
  return { ...rest, nodeRuns: compactNodes(nodes) };
}

/**
 * The inventory the workflow works with, from either input: the expanded one every run started
 * before this change carries (and small clouds still send), or the compact one.
 */
export function expandInventory(inv: Inventory | CompactInventory): Inventory {
  if (!('nodeRuns' in inv)) return inv;
  const { nodeRuns, ...rest } = inv;
  return { ...rest, nodes: expandNodeRuns(nodeRuns) };
}

/**
 * The inventory as the CLI puts it in the workflow input: compact from COMPACT_FROM_NODES nodes
 * when that is smaller and proven to expand back to these very nodes; otherwise in full, so the
 * plan can never differ. (Cells numbered round-robin leave no runs: every node is its own.)
 */
export function inputInventory(inv: Inventory): Inventory | CompactInventory {
  if (inv.nodes.length < COMPACT_FROM_NODES) return inv;
  const compact = compactInventory(inv);
  if (compact.nodeRuns.length * 2 > inv.nodes.length) return inv;
  return JSON.stringify(expandNodeRuns(compact.nodeRuns)) === JSON.stringify(inv.nodes) ? compact : inv;
}
