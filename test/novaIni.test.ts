import { describe, expect, it } from 'vitest';
import { getIniOption, setIniOption } from '../activities/nova/ini';

const set = (text: string) => setIniOption(text, 'upgrade_levels', 'compute', 'auto');

describe('setIniOption', () => {
  it('adds the section at the end of a file that lacks it, separated by a blank line', () => {
    const text = '[DEFAULT]\ndebug = True\n\n[api]\nauth_strategy = keystone\n';
    const r = set(text);
    expect(r.changed).toBe(true);
    expect(r.text).toBe(`${text}\n[upgrade_levels]\ncompute = auto\n`);
  });

  it('does not double a blank line the file already ends with', () => {
    const r = set('[DEFAULT]\ndebug = True\n\n');
    expect(r.text).toBe('[DEFAULT]\ndebug = True\n\n[upgrade_levels]\ncompute = auto\n');
  });

  it('writes just the section into an empty file', () => {
    expect(set('').text).toBe('[upgrade_levels]\ncompute = auto\n');
  });

  it('keeps a missing final newline missing', () => {
    const r = set('[DEFAULT]\ndebug = True');
    expect(r.text).toBe('[DEFAULT]\ndebug = True\n\n[upgrade_levels]\ncompute = auto');
  });

  it('adds the key at the end of an existing section, before the blank lines that end it', () => {
    const text = '[DEFAULT]\nx = 1\n\n[upgrade_levels]\ncert = auto\n\n\n[api]\ny = 2\n';
    expect(set(text).text).toBe(
      '[DEFAULT]\nx = 1\n\n[upgrade_levels]\ncert = auto\ncompute = auto\n\n\n[api]\ny = 2\n',
    );
  });

  it('adds the key under an empty section header, even as the last line without a newline', () => {
    expect(set('[DEFAULT]\nx = 1\n[upgrade_levels]').text).toBe('[DEFAULT]\nx = 1\n[upgrade_levels]\ncompute = auto');
    expect(set('[upgrade_levels]\n[api]\n').text).toBe('[upgrade_levels]\ncompute = auto\n[api]\n');
  });

  it("replaces another value and keeps the line's own spacing", () => {
    expect(set('[upgrade_levels]\ncompute=juno\n').text).toBe('[upgrade_levels]\ncompute=auto\n');
    expect(set('[upgrade_levels]\ncompute   =   2023.1  \n').text).toBe('[upgrade_levels]\ncompute   =   auto  \n');
    expect(set('[upgrade_levels]\ncompute: 2023.1\n').text).toBe('[upgrade_levels]\ncompute: auto\n');
  });

  it('changes nothing when the value is already set', () => {
    const text = '# nova.conf\n[upgrade_levels]\ncompute = auto\n';
    expect(set(text)).toEqual({ text, changed: false });
    expect(set('[upgrade_levels]\r\ncompute=auto')).toEqual({
      text: '[upgrade_levels]\r\ncompute=auto',
      changed: false,
    });
  });

  it('puts the key after a commented-out example and leaves the comment', () => {
    const text =
      '[upgrade_levels]\n#\n# Compute RPC API version cap (string value)\n#compute = <None>\n\n#cert = <None>\n';
    expect(set(text).text).toBe(
      '[upgrade_levels]\n#\n# Compute RPC API version cap (string value)\n#compute = <None>\ncompute = auto\n\n#cert = <None>\n',
    );
    expect(set('[upgrade_levels]\n; compute=old\n').text).toBe('[upgrade_levels]\n; compute=old\ncompute = auto\n');
  });

  it('ignores a commented example outside the section', () => {
    const text = '[DEFAULT]\n#compute = x\n';
    expect(set(text).text).toBe('[DEFAULT]\n#compute = x\n\n[upgrade_levels]\ncompute = auto\n');
  });

  it('keeps CRLF line endings, for the lines it adds too', () => {
    expect(set('[DEFAULT]\r\nx = 1\r\n').text).toBe('[DEFAULT]\r\nx = 1\r\n\r\n[upgrade_levels]\r\ncompute = auto\r\n');
    expect(set('[upgrade_levels]\r\ncompute = juno\r\n[api]\r\n').text).toBe(
      '[upgrade_levels]\r\ncompute = auto\r\n[api]\r\n',
    );
    expect(set('[upgrade_levels]\r\ncert = a\r\n').text).toBe('[upgrade_levels]\r\ncert = a\r\ncompute = auto\r\n');
  });

  it('changes the last assignment, the one oslo.config uses, and leaves an overridden earlier one', () => {
    const text = '[upgrade_levels]\ncompute = auto\n[api]\nx = 1\n[upgrade_levels]\ncompute = 2023.1\n';
    expect(set(text).text).toBe('[upgrade_levels]\ncompute = auto\n[api]\nx = 1\n[upgrade_levels]\ncompute = auto\n');
    const already = '[upgrade_levels]\ncompute = 2023.1\n[upgrade_levels]\ncompute = auto\n';
    expect(set(already).changed).toBe(false);
  });

  it('matches group names the way oslo.config does: any case but DEFAULT', () => {
    expect(set('[UPGRADE_LEVELS]\ncompute = x\n').text).toBe('[UPGRADE_LEVELS]\ncompute = auto\n');
    expect(setIniOption('[default]\ndebug = x\n', 'DEFAULT', 'debug', 'True').text).toBe(
      '[default]\ndebug = x\n\n[DEFAULT]\ndebug = True\n',
    );
  });

  it('treats an indented line as a continuation, not a key, and drops it with the old value', () => {
    expect(set('[upgrade_levels]\n  compute = x\n').text).toBe('[upgrade_levels]\n  compute = x\ncompute = auto\n');
    expect(set('[upgrade_levels]\ncompute = a\n  b\nscheduler = auto\n').text).toBe(
      '[upgrade_levels]\ncompute = auto\nscheduler = auto\n',
    );
  });

  it('does not take a longer key or a value with an inline comment for the key set', () => {
    expect(set('[upgrade_levels]\ncompute_rpcapi = x\n').text).toBe(
      '[upgrade_levels]\ncompute_rpcapi = x\ncompute = auto\n',
    );
    // oslo.config has no inline comments: the value is "auto # pinned".
    expect(set('[upgrade_levels]\ncompute = auto # pinned\n').text).toBe('[upgrade_levels]\ncompute = auto\n');
  });

  it('leaves every other byte alone in a realistic nova.conf', () => {
    const text = [
      '[DEFAULT]',
      'transport_url = rabbit://stackrabbit:secret@10.0.0.10:5672/',
      'my_ip = 10.0.0.11',
      '',
      '[database]',
      'connection = mysql+pymysql://root:secret@10.0.0.10/nova_cell1?charset=utf8',
      '',
      '[upgrade_levels]',
      '# set during the Zed upgrade',
      'compute = zed',
      '',
      '[placement]',
      'region_name = RegionOne',
      '',
    ].join('\n');
    const r = set(text);
    expect(r.text).toBe(text.replace('compute = zed', 'compute = auto'));
    expect(set(r.text).changed).toBe(false);
    expect(getIniOption(r.text, 'upgrade_levels', 'compute')).toBe('auto');
  });
});

describe('getIniOption', () => {
  it('reads the last assignment in the section, and nothing outside it', () => {
    expect(
      getIniOption('[a]\ncompute = 1\n[upgrade_levels]\ncompute = 2\ncompute = 3\n', 'upgrade_levels', 'compute'),
    ).toBe('3');
    expect(getIniOption('[a]\ncompute = 1\n', 'upgrade_levels', 'compute')).toBeUndefined();
  });
});
