// The shell each lb-setup step runs on an LB node. One command per step, so a step is one SSH
// round trip and a retried activity finds the node in a state the same script understands.
import { shellQuote as q } from '../../inventory/commands';

/** Runs a script as root through `sudo -n` (never a password prompt) or as the login user. */
export function privileged(sudo: boolean, script: string): string {
  // A non-root login's PATH on Debian lacks /usr/sbin, where sysctl and haproxy live.
  return `${sudo ? 'sudo -n ' : ''}sh -c ${q(`PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"\n${script}`)}`;
}

/**
 * Records which content of a file its service last loaded. Comparing it with the file decides
 * whether to reload, so a run that installed a file and then died still reloads on the next run.
 */
export function appliedStampPath(path: string): string {
  return `${path}.nova-upgrade-applied`;
}

/** Prints a unified diff of the live file against stdin; exit 0 same, 1 differs, 2 trouble. */
export function diffScript(path: string): string {
  const p = q(path);
  return `if [ -e ${p} ]; then diff -u --label ${q(`${path} (on the node)`)} --label ${q(`${path} (rendered)`)} ${p} -; else diff -u --label ${q(`${path} (absent)`)} --label ${q(`${path} (rendered)`)} /dev/null -; fi`;
}

/** Prints "pending" when the service has not loaded the file as it is now. */
export function pendingScript(path: string): string {
  const p = q(path);
  const stamp = q(appliedStampPath(path));
  return `if [ -e ${p} ] && [ "$(sha256sum < ${p} | cut -d' ' -f1)" = "$(cat ${stamp} 2>/dev/null)" ]; then echo loaded; else echo pending; fi`;
}

export function stampScript(path: string): string {
  return `sha256sum < ${q(path)} | cut -d' ' -f1 > ${q(appliedStampPath(path))}`;
}

/** Installs stdin at path unless it is already there; the old file is kept as a dated backup. */
export function installScript(path: string): string {
  const p = q(path);
  const tmp = q(`${path}.nova-upgrade-tmp`);
  return [
    'set -e',
    `mkdir -p "$(dirname ${p})"`,
    `cat > ${tmp}`,
    `if [ -e ${p} ] && cmp -s ${tmp} ${p}; then rm -f ${tmp}; echo unchanged; exit 0; fi`,
    `if [ -e ${p} ]; then b=${p}.bak-$(date +%Y%m%dT%H%M%S); cp -p ${p} "$b"; echo "backup $b"; fi`,
    `chmod 644 ${tmp}`,
    `mv -f ${tmp} ${p}`,
    'echo installed',
  ].join('\n');
}

/** A state file holding only its version line: HAProxy then starts without a warning. */
export function ensureStateFileScript(path: string): string {
  const p = q(path);
  return `if [ -e ${p} ]; then echo present; else mkdir -p "$(dirname ${p})"; printf '1\\n' > ${p}; echo created; fi`;
}

export function writeStdinScript(path: string): string {
  const p = q(path);
  const tmp = q(`${path}.nova-upgrade-tmp`);
  return `set -e; mkdir -p "$(dirname ${p})"; cat > ${tmp}; mv -f ${tmp} ${p}`;
}

export const NONLOCAL_BIND = 'net.ipv4.ip_nonlocal_bind';

export function nonlocalBindScript(): string {
  return `if [ "$(sysctl -n ${NONLOCAL_BIND})" = 1 ]; then echo unchanged; else sysctl -q -w ${NONLOCAL_BIND}=1 && echo set; fi`;
}

export function haproxyRunningScript(pidFile: string): string {
  return `if pgrep -F ${q(pidFile)} haproxy >/dev/null 2>&1; then echo running; else echo stopped; fi`;
}

export function httpStatusScript(url: string): string {
  return `curl -sS -o /dev/null -w '%{http_code}' --max-time 5 ${q(url)}`;
}
