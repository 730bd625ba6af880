// Turns payloads the server stores (activity results, heartbeat details, summaries) back into
// values with the client's own data converter, so a codec configured for a cluster (e.g.
// encryption) applies here as it does in the worker.
import type { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';

export async function decodePayload(client: Client, payload: Payload | null | undefined): Promise<unknown> {
  if (!payload) return undefined;
  const dc = client.options.loadedDataConverter;
  let decoded = [payload];
  // Codecs encode in order, so they decode in reverse.
  for (const codec of [...dc.payloadCodecs].reverse()) decoded = await codec.decode(decoded);
  return dc.payloadConverter.fromPayload(decoded[0]!);
}
