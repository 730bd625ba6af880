// Ansible inventories, INI or YAML, as Ansible's own inventory plugins read them: groups,
// `:children` and `:vars` sections, host ranges (`compute[01:20]`), inline host variables,
// the implicit `all` and `ungrouped` groups, and variables resolved all < group < host.
import { parseDocument } from 'yaml';

export class ImportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImportError';
  }
}

export type Vars = Record<string, unknown>;

export interface AnsibleInventory {
  /** Where it was read from, for messages. */
  source: string;
  groups: Map<string, { hosts: Set<string>; children: Set<string>; vars: Vars }>;
  hostVars: Map<string, Vars>;
  /** Hosts in the order the file first names them. */
  hostOrder: string[];
}

function emptyInventory(source: string): AnsibleInventory {
  const inv: AnsibleInventory = { source, groups: new Map(), hostVars: new Map(), hostOrder: [] };
  group(inv, 'all');
  group(inv, 'ungrouped');
  return inv;
}

function group(inv: AnsibleInventory, name: string) {
  let g = inv.groups.get(name);
  if (!g) {
    g = { hosts: new Set(), children: new Set(), vars: {} };
    inv.groups.set(name, g);
  }
  return g;
}

function addHost(inv: AnsibleInventory, groupName: string, host: string, vars: Vars): void {
  if (!inv.hostVars.has(host)) {
    inv.hostVars.set(host, {});
    inv.hostOrder.push(host);
  }
  Object.assign(inv.hostVars.get(host)!, vars);
  group(inv, groupName).hosts.add(host);
}

/** `web[01:03].example`, `db-[a:c]`, `n[1:9:2]` → every host they name, as Ansible expands them. */
export function expandHostPattern(pattern: string, where: string): string[] {
  const m = /^(.*?)\[([^\]:]+):([^\]:]+)(?::(\d+))?\](.*)$/.exec(pattern);
  if (!m) return [pattern];
  const [head, from, to, strideText, tail] = [m[1]!, m[2]!, m[3]!, m[4], m[5]!];
  const stride = strideText ? Number(strideText) : 1;
  const out: string[] = [];
  if (/^\d+$/.test(from) && /^\d+$/.test(to)) {
    const width = from.startsWith('0') ? from.length : 0;
    for (let i = Number(from); i <= Number(to); i += stride) out.push(String(i).padStart(width, '0'));
  } else if (/^[a-z]$/i.test(from) && /^[a-z]$/i.test(to)) {
    for (let c = from.charCodeAt(0); c <= to.charCodeAt(0); c += stride) out.push(String.fromCharCode(c));
  } else {
    throw new ImportError(`${where}: cannot expand the host range [${from}:${to}]`);
  }
  if (out.length === 0) throw new ImportError(`${where}: the host range [${from}:${to}] names no host`);
  return out.flatMap((part) => expandHostPattern(`${head}${part}${tail}`, where));
}

/** `key=value key2="a b"` as on an INI host line; values stay strings, as the INI plugin keeps most. */
function parseInlineVars(text: string, where: string): Vars {
  const vars: Vars = {};
  const re = /\s*([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < text.length && (m = re.exec(text))) {
    let v = m[2]!;
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    vars[m[1]!] = v;
    pos = re.lastIndex;
  }
  const rest = text.slice(pos).trim();
  if (rest && !rest.startsWith('#'))
    throw new ImportError(`${where}: cannot read "${rest}" as key=value host variables`);
  return vars;
}

export function parseIni(text: string, source: string): AnsibleInventory {
  const inv = emptyInventory(source);
  let section = { name: 'ungrouped', kind: 'hosts' as 'hosts' | 'children' | 'vars' };
  text.split('\n').forEach((raw, i) => {
    const where = `${source} line ${i + 1}`;
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) return;
    const header = /^\[([^\]:]+)(?::(children|vars))?\]$/.exec(line);
    if (header) {
      section = { name: header[1]!, kind: (header[2] as 'children' | 'vars' | undefined) ?? 'hosts' };
      group(inv, section.name);
      return;
    }
    if (section.kind === 'vars') {
      const eq = line.indexOf('=');
      if (eq < 0) throw new ImportError(`${where}: a [${section.name}:vars] line must be key=value`);
      Object.assign(group(inv, section.name).vars, parseInlineVars(line, where));
      return;
    }
    const [name, ...rest] = line.split(/\s+/);
    if (section.kind === 'children') {
      group(inv, name!);
      group(inv, section.name).children.add(name!);
      return;
    }
    const vars = parseInlineVars(rest.join(' '), where);
    for (const host of expandHostPattern(name!, where)) addHost(inv, section.name, host, vars);
  });
  return inv;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseYamlInventory(text: string, source: string): AnsibleInventory {
  const doc = parseDocument(text);
  if (doc.errors.length) throw new ImportError(`${source}: not YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const data: unknown = doc.toJS();
  const inv = emptyInventory(source);
  if (data === null || data === undefined) return inv;
  if (!isMap(data)) throw new ImportError(`${source}: an Ansible YAML inventory is a mapping of groups`);
  const walk = (name: string, body: unknown, path: string) => {
    const g = group(inv, name);
    if (body === null || body === undefined) return;
    if (!isMap(body)) throw new ImportError(`${source}: ${path} must be a mapping with hosts, children or vars`);
    for (const key of Object.keys(body))
      if (!['hosts', 'children', 'vars'].includes(key))
        throw new ImportError(`${source}: ${path}.${key}: an inventory group holds only hosts, children and vars`);
    if (body.vars !== undefined) {
      if (!isMap(body.vars)) throw new ImportError(`${source}: ${path}.vars must be a mapping`);
      Object.assign(g.vars, body.vars);
    }
    if (body.hosts !== undefined && body.hosts !== null) {
      if (!isMap(body.hosts)) throw new ImportError(`${source}: ${path}.hosts must be a mapping of host names`);
      for (const [pattern, vars] of Object.entries(body.hosts)) {
        if (vars !== null && !isMap(vars))
          throw new ImportError(`${source}: ${path}.hosts.${pattern} must be a mapping of variables`);
        for (const host of expandHostPattern(pattern, `${source}: ${path}.hosts`)) addHost(inv, name, host, vars ?? {});
      }
    }
    if (body.children !== undefined && body.children !== null) {
      if (!isMap(body.children)) throw new ImportError(`${source}: ${path}.children must be a mapping of groups`);
      for (const [child, childBody] of Object.entries(body.children)) {
        g.children.add(child);
        walk(child, childBody, `${path}.children.${child}`);
      }
    }
  };
  for (const [name, body] of Object.entries(data)) walk(name, body, name);
  return inv;
}

/** INI unless the text parses as a YAML mapping of groups. */
export function parseAnsibleInventory(text: string, source: string): AnsibleInventory {
  const firstLine = text.split('\n').find((l) => l.trim() && !l.trim().startsWith('#'));
  if (firstLine && /^\s*\[/.test(firstLine)) return parseIni(text, source);
  if (firstLine && /^[A-Za-z0-9_-]+:\s*$/.test(firstLine.trim())) return parseYamlInventory(text, source);
  return parseIni(text, source);
}

/** Every host in the group, through its children, in file order. */
export function hostsOf(inv: AnsibleInventory, name: string): string[] {
  if (name === 'all') return [...inv.hostOrder];
  const seen = new Set<string>();
  const found = new Set<string>();
  const visit = (g: string) => {
    if (seen.has(g)) return;
    seen.add(g);
    const grp = inv.groups.get(g);
    if (!grp) return;
    for (const h of grp.hosts) found.add(h);
    for (const c of grp.children) visit(c);
  };
  visit(name);
  return inv.hostOrder.filter((h) => found.has(h));
}

/** The groups a host is in, directly or through children, parents first. */
function groupsOfHost(inv: AnsibleInventory, host: string): string[] {
  const direct = [...inv.groups.entries()].filter(([, g]) => g.hosts.has(host)).map(([n]) => n);
  const depth = new Map<string, number>();
  const parentsOf = (name: string) => [...inv.groups.entries()].filter(([, g]) => g.children.has(name)).map(([n]) => n);
  const climb = (name: string, d: number) => {
    if ((depth.get(name) ?? -1) >= d || d > 64) return;
    depth.set(name, d);
    for (const p of parentsOf(name)) climb(p, d + 1);
  };
  for (const g of direct) climb(g, 0);
  return [...depth.entries()].sort((a, b) => b[1] - a[1]).map(([n]) => n);
}

/** A host's variables as Ansible resolves them: all, then its groups (parents first), then its own. */
export function varsOf(inv: AnsibleInventory, host: string): Vars {
  const out: Vars = { ...inv.groups.get('all')!.vars };
  for (const g of groupsOfHost(inv, host)) if (g !== 'all') Object.assign(out, inv.groups.get(g)!.vars);
  return Object.assign(out, inv.hostVars.get(host) ?? {});
}
