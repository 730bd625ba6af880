// Which nodes run commands through sudo. Pure and free of Node APIs: the workflow imports it to
// decide, from its own plan, which nodes the preflight checks for password-less sudo.

/** Whether a shell command runs sudo (as a command word, not inside another word). */
export function usesSudo(command: string): boolean {
  return /(^|[\s;&|(`]|\$\()sudo(\s|$)/.test(command);
}

/** The nodes among `commands` that run at least one command through sudo. */
export function nodesUsingSudo(commands: ReadonlyArray<{ node: string; command: string }>): string[] {
  return [...new Set(commands.filter((c) => usesSudo(c.command)).map((c) => c.node))];
}
