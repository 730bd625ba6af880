// Remote scripts are parsed by whatever /bin/sh the node has (dash on Debian), so everything
// built here sticks to POSIX sh and passes user text only inside single quotes.

/** One shell word holding `text` exactly: quotes, `$`, backslashes and newlines included. */
export function shQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * A remote path as a shell word. A leading `$HOME` or `~` is left for the node to expand, since
 * the lead does not know the remote user's home; the rest is quoted literally.
 */
export function remotePath(path: string): string {
  const home = /^(\$HOME|\$\{HOME\}|~)(\/|$)/.exec(path);
  if (!home) return shQuote(path);
  const rest = path.slice(home[1].length);
  return rest ? `"$HOME"${shQuote(rest)}` : '"$HOME"';
}

/**
 * Stops a process group: TERM, then KILL if anything in it outlives the grace period, then
 * waits briefly so a caller that checks afterwards finds it gone. `pgid` is a shell
 * expression (a number or "$pid"). dash's kill takes `-SIG -PGID` but rejects `--`.
 */
export function killProcessGroupScript(pgid: string, graceMs: number): string {
  const rounds = Math.max(1, Math.ceil(graceMs / 100));
  return [
    `pg=${pgid}`,
    // kill -0 also succeeds for zombies, which may wait long for a parent to reap them (or
    // forever, under an init that does not), so where /proc exists only live members count.
    'alive() {',
    '  kill -0 -"$pg" 2>/dev/null || kill -0 "$pg" 2>/dev/null || return 1',
    '  if [ -r /proc/self/stat ]; then',
    '    for f in /proc/[0-9]*/stat; do',
    '      read -r l 2>/dev/null < "$f" || continue',
    `      set -- \${l##*') '}`,
    '      [ "$3" = "$pg" ] && [ "$1" != Z ] && return 0',
    '    done',
    '    return 1',
    '  fi',
    '}',
    'pause() { sleep 0.1 2>/dev/null || sleep 1; }',
    'kill -TERM -"$pg" 2>/dev/null || kill -TERM "$pg" 2>/dev/null',
    'i=0',
    `while alive && [ "$i" -lt ${rounds} ]; do pause; i=$((i + 1)); done`,
    'if alive; then',
    '  kill -KILL -"$pg" 2>/dev/null || kill -KILL "$pg" 2>/dev/null',
    '  i=0',
    '  while alive && [ "$i" -lt 30 ]; do pause; i=$((i + 1)); done',
    'fi',
    'true',
  ].join('\n');
}
