// An imported inventory before it is written: the values, and a note on every value the
// importer had to assume. It is validated like any inventory; what would not validate is
// refused with the validator's sentences, so the output always loads.
import { Document, isCollection, isMap, isScalar, isSeq } from 'yaml';
import { InventoryError, validateInventory } from '../load';
import { ImportError, type Vars } from './ansibleInventory';

export type Path = Array<string | number>;

export class Draft {
  readonly inventory: Record<string, unknown> = {};
  private readonly notes: Array<{ path: Path; text: string }> = [];

  constructor(readonly header: string[]) {}

  /** Sets a value and, when `assumed` is given, says why it is what it is. */
  set(path: Path, value: unknown, assumed?: string): void {
    let cursor: Record<string, unknown> | unknown[] = this.inventory;
    path.forEach((key, i) => {
      const last = i === path.length - 1;
      const c = cursor as Record<string | number, unknown>;
      if (last) c[key] = value;
      else {
        if (c[key] === undefined) c[key] = typeof path[i + 1] === 'number' ? [] : {};
        cursor = c[key] as Record<string, unknown> | unknown[];
      }
    });
    if (assumed) this.notes.push({ path, text: assumed });
  }

  note(path: Path, text: string): void {
    this.notes.push({ path, text });
  }

  /** Validates, then renders YAML with an `ASSUMED:` comment on every assumed value. */
  render(source: string): string {
    try {
      validateInventory(this.inventory, source);
    } catch (err) {
      if (err instanceof InventoryError) {
        throw new ImportError(
          `${source}: the imported inventory would not be valid:\n  - ${err.problems.join('\n  - ')}`,
        );
      }
      throw err;
    }
    const doc = new Document(this.inventory);
    doc.commentBefore = this.header.map((l) => ` ${l}`).join('\n');
    // Short lists of scalars (roles) read better on one line.
    const flow = (node: unknown): void => {
      if (isSeq(node)) {
        if (node.items.every((i) => isScalar(i))) node.flow = true;
        else node.items.forEach(flow);
      } else if (isMap(node)) node.items.forEach((pair) => flow(pair.value));
    };
    flow(doc.contents);
    for (const { path, text } of this.notes) {
      const node = doc.getIn(path, true);
      const line = ` ASSUMED: ${text}`;
      // A scalar or a one-line list takes the note at the end of its line; a block, above it.
      if (isScalar(node) || (isSeq(node) && node.flow)) node.comment = node.comment ? `${node.comment};${line}` : line;
      else if (isCollection(node)) node.commentBefore = node.commentBefore ? `${node.commentBefore}\n${line}` : line;
    }
    return doc.toString({ lineWidth: 0 });
  }
}

/** The SSH settings an Ansible host gives, as node fields. */
export function sshFieldsOf(vars: Vars): { sshUser?: string; sshPort?: number; sshPrivateKeyPath?: string } {
  const user = vars.ansible_user ?? vars.ansible_ssh_user;
  const port = vars.ansible_port ?? vars.ansible_ssh_port;
  const key = vars.ansible_ssh_private_key_file ?? vars.ansible_private_key_file;
  return {
    ...(typeof user === 'string' && user ? { sshUser: user } : {}),
    ...(port !== undefined && /^\d+$/.test(String(port)) ? { sshPort: Number(port) } : {}),
    ...(typeof key === 'string' && key ? { sshPrivateKeyPath: key } : {}),
  };
}

export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** `--vip` given, or the host of a load-balancer VIP: nova-api's URL behind it. */
export function vipUrl(hostOrUrl: string, port: number, https: boolean): string {
  if (/^https?:\/\//.test(hostOrUrl)) return hostOrUrl.replace(/\/+$/, '');
  const host = hostOrUrl.includes(':') ? `[${hostOrUrl}]` : hostOrUrl;
  return `${https ? 'https' : 'http'}://${host}:${port}`;
}

export function isTemplate(v: unknown): boolean {
  return typeof v === 'string' && v.includes('{{');
}
