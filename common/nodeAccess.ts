// The node-access preflight's refusals, as the activity reports them and the workflow names them
// (pure: both sides import it).

/** A node the preflight refused, and why, in a sentence that names it. */
export interface NodeAccessRefusal {
  node: string;
  error: string;
  /** The failure type (SshFailureType), when the refusal had one. */
  type?: string;
}

/** Refusals named one by one in a message; the rest are counted (a message is a payload too). */
export const REFUSALS_NAMED = 50;

/** `2 of 200 node(s) cannot be used: <each refusal> [<its type>]; …`, as the preflight always said. */
export function refusalSentence(refused: NodeAccessRefusal[], of: number, count = refused.length): string {
  const named = refused.slice(0, REFUSALS_NAMED).map((r) => `${r.error}${r.type ? ` [${r.type}]` : ''}`);
  const more = refused.length > REFUSALS_NAMED ? `; and ${refused.length - REFUSALS_NAMED} more` : '';
  return `${count} of ${of} node(s) cannot be used: ${named.join('; ')}${more}`;
}
