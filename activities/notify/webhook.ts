// Tells a chat room or a pager that the upgrade needs someone (a gate, a hold) or has finished,
// with the CLI command that answers it. A notification is a courtesy, never a step: it retries a
// little, then reports that it was not delivered and lets the upgrade go on.
import { readFileSync } from 'node:fs';
import type { NotifyEvent, WebhookRef } from '../../common/messages';
import { heartbeat, nonRetryable } from '../common';

export interface NotifyWebhookInput {
  /** Where the worker finds the URL. 0.1.0 runs carry the URL itself (`url`) in their history. */
  url?: string;
  urlFile?: string;
  urlEnv?: string;
  event: NotifyEvent;
  attempts?: number;
  requestTimeoutMs?: number;
  backoffMs?: number;
}

export interface NotifyWebhookResult {
  delivered: boolean;
  attempts: number;
  summary: string;
  status?: number;
  error?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function postOnce(
  url: string,
  body: string,
  timeoutMs: number,
): Promise<{ ok: boolean; status?: number; error?: string }> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'nova-upgrade' },
      body,
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
    });
    // The receiver's body is of no use to us, but an unread one keeps the socket busy.
    await res.arrayBuffer().catch(() => undefined);
    return res.ok ? { ok: true, status: res.status } : { ok: false, status: res.status, error: `HTTP ${res.status}` };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    return { ok: false, error: cause ?? (err instanceof Error ? err.message : String(err)) };
  }
}

/** Where a URL points, without any credentials or tokens it may carry in its path or query. */
function safeTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return 'the webhook';
  }
}

/**
 * The URL carries its token, so the workflow passes only where to find it (a file or an
 * environment variable on the worker's host) and it never enters history. Read at every
 * notification, so a rotated token is used from the next one on.
 */
export function resolveWebhookUrl(ref: WebhookRef & { url?: string }): string {
  if (ref.url) return ref.url;
  let raw: string | undefined;
  if (ref.urlFile) {
    try {
      raw = readFileSync(ref.urlFile, 'utf8');
    } catch (err) {
      throw nonRetryable(
        'NotifyWebhookUrlUnreadable',
        `notify.webhookUrlFile ${ref.urlFile} cannot be read on this worker: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
  } else if (ref.urlEnv) {
    raw = process.env[ref.urlEnv];
    if (raw === undefined)
      throw nonRetryable(
        'NotifyWebhookUrlUnreadable',
        `notify.webhookUrlEnv ${ref.urlEnv} is not set in this worker's environment`,
      );
  }
  const url = raw?.trim() ?? '';
  if (!/^https?:\/\/\S+$/.test(url)) {
    throw nonRetryable(
      'NotifyWebhookUrlUnreadable',
      `the webhook URL in ${ref.urlFile ? `notify.webhookUrlFile ${ref.urlFile}` : `notify.webhookUrlEnv ${ref.urlEnv}`} is not an http(s) URL`,
    );
  }
  return url;
}

export function createNotifyActivities() {
  async function notifyWebhook(input: NotifyWebhookInput): Promise<NotifyWebhookResult> {
    const url = resolveWebhookUrl(input);
    const attempts = Math.max(1, input.attempts ?? 3);
    const body = JSON.stringify(input.event);
    let last: { status?: number; error?: string } = {};
    for (let i = 1; i <= attempts; i++) {
      const r = await postOnce(url, body, input.requestTimeoutMs ?? 5_000);
      if (r.ok)
        return {
          delivered: true,
          attempts: i,
          summary: `${input.event.event} notification delivered to ${safeTarget(url)} (HTTP ${r.status})`,
          ...(r.status ? { status: r.status } : {}),
        };
      last = r;
      heartbeat({ attempt: i, error: r.error });
      if (i < attempts) await sleep((input.backoffMs ?? 1_000) * 2 ** (i - 1));
    }
    return {
      delivered: false,
      attempts,
      summary: `${input.event.event} notification NOT delivered to ${safeTarget(url)} after ${attempts} attempt(s): ${last.error ?? 'unknown error'}`,
      ...(last.status ? { status: last.status } : {}),
      ...(last.error ? { error: last.error } : {}),
    };
  }

  return { notifyWebhook };
}
