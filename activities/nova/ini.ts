// A byte-preserving edit of oslo.config INI files: operators diff nova.conf against their
// configuration management, so only the one line we own may change.

export interface IniEdit {
  text: string;
  changed: boolean;
}

interface Line {
  body: string;
  /** '\n', '\r\n' or '' for a last line without a newline. */
  eol: string;
}

function splitLines(text: string): Line[] {
  const lines: Line[] = [];
  const re = /([^\n]*?)(\r?\n)|([^\n]+)$/g;
  for (const m of text.matchAll(re)) {
    if (m[3] !== undefined) lines.push({ body: m[3], eol: '' });
    else lines.push({ body: m[1]!, eol: m[2]! });
  }
  return lines;
}

// oslo.config lower-cases group names except DEFAULT when it reads files.
function sameSection(a: string, b: string): boolean {
  if (a === 'DEFAULT' || b === 'DEFAULT') return a === b;
  return a.toLowerCase() === b.toLowerCase();
}

function sectionOf(body: string): string | undefined {
  const m = /^\[([^\]]*)\]/.exec(body);
  return m ? m[1]!.trim() : undefined;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Sets `key = value` in `[section]`, as oslo.config would read it: keys start at column 0
 * (an indented line continues the previous value), '#' and ';' start comments, the last
 * assignment wins. An existing assignment keeps its spacing; a new one goes after a
 * commented-out example of the key, else at the end of the section, else in a new section
 * at the end of the file. The file's line ending style and its (missing) final newline stay.
 */
export function setIniOption(text: string, section: string, key: string, value: string): IniEdit {
  const lines = splitLines(text);
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const assignment = new RegExp(`^(${escapeRe(key)}\\s*[=:]\\s*)(.*?)(\\s*)$`);
  const commented = new RegExp(`^[#;]\\s*${escapeRe(key)}\\s*[=:]`);

  let current: string | undefined;
  let lastAssignment = -1;
  let lastCommented = -1;
  let lastContentInSection = -1;
  for (let i = 0; i < lines.length; i++) {
    const body = lines[i]!.body;
    const header = sectionOf(body);
    if (header !== undefined) {
      current = header;
      if (sameSection(header, section)) lastContentInSection = i;
      continue;
    }
    if (current === undefined || !sameSection(current, section)) continue;
    if (body.trim() !== '') lastContentInSection = i;
    if (assignment.test(body)) lastAssignment = i;
    else if (commented.test(body)) lastCommented = i;
  }

  if (lastAssignment >= 0) {
    const line = lines[lastAssignment]!;
    const m = assignment.exec(line.body)!;
    // Indented lines after the assignment are part of its value; they go with the old value.
    let end = lastAssignment + 1;
    while (end < lines.length && /^[ \t]+\S/.test(lines[end]!.body)) end++;
    if (m[2] === value && end === lastAssignment + 1) return { text, changed: false };
    const replaced: Line = {
      body: `${m[1]}${value}${m[3]}`,
      eol: end === lines.length ? lines[end - 1]!.eol : line.eol,
    };
    lines.splice(lastAssignment, end - lastAssignment, replaced);
    return { text: join(lines), changed: true };
  }

  const newLine = `${key} = ${value}`;
  if (lastContentInSection >= 0) {
    const after = lastCommented >= 0 ? lastCommented : lastContentInSection;
    insertAfter(lines, after, newLine, eol);
    return { text: join(lines), changed: true };
  }

  const out: Line[] = [...lines];
  const last = out[out.length - 1];
  const endsWithoutNewline = last !== undefined && last.eol === '';
  if (last && endsWithoutNewline) last.eol = eol;
  if (last && last.body.trim() !== '') out.push({ body: '', eol });
  out.push({ body: `[${section}]`, eol });
  out.push({ body: newLine, eol: endsWithoutNewline ? '' : eol });
  return { text: join(out), changed: true };
}

function insertAfter(lines: Line[], index: number, body: string, eol: string): void {
  const anchor = lines[index]!;
  if (anchor.eol === '') {
    // The anchor was the file's last line: it gains the newline and the new line inherits
    // the missing one, so the file still ends the way it did.
    anchor.eol = eol;
    lines.splice(index + 1, 0, { body, eol: '' });
  } else {
    lines.splice(index + 1, 0, { body, eol: anchor.eol });
  }
}

function join(lines: Line[]): string {
  return lines.map((l) => l.body + l.eol).join('');
}

/** The value oslo.config would read for `key` in `section`, or undefined. */
export function getIniOption(text: string, section: string, key: string): string | undefined {
  const assignment = new RegExp(`^${escapeRe(key)}\\s*[=:]\\s*(.*?)\\s*$`);
  let current: string | undefined;
  let found: string | undefined;
  for (const { body } of splitLines(text)) {
    const header = sectionOf(body);
    if (header !== undefined) current = header;
    else if (current !== undefined && sameSection(current, section)) {
      const m = assignment.exec(body);
      if (m) found = m[1];
    }
  }
  return found;
}
