// Correcting a command template of a running upgrade without starting over: only while a step
// is held (nothing runs then, so no command is half-issued with the old template), checked as
// the inventory's templates are, and recorded in history (the update) and in the progress. The
// workflow's inventory is changed in place, so every later command, the held step's retry
// included, is rendered from the corrected template.
import { setHandler } from '@temporalio/workflow';
import { setTemplatesUpdate, type SetTemplatesInput } from '../common/messages';
import { DEFAULT_COMMANDS, templateProblems, type CommandName } from '../inventory/commands';
import type { Inventory } from '../inventory/schema';
import type { UpgradeState } from './state';

const isCommandName = (name: string): name is CommandName => Object.hasOwn(DEFAULT_COMMANDS, name);

export function templatesProblem(
  state: UpgradeState,
  input: SetTemplatesInput,
  profile = 'devstack',
): string | undefined {
  const held = state.progress.pendingDecision;
  if (!held)
    return 'command templates can be changed only while a step is held (nothing runs then); this upgrade holds no step now';
  const names = Object.keys(input.templates);
  if (!names.length) return 'name at least one template to change (name=template)';
  if (!input.by) return 'an operator name is required';
  const unknown = names.filter((n) => !isCommandName(n));
  if (unknown.length)
    return `${unknown.map((n) => `commands.${n}`).join(', ')}: not a command template; the templates are ${Object.keys(DEFAULT_COMMANDS).join(', ')}`;
  const empty = names.filter((n) => !input.templates[n]?.trim());
  if (empty.length) return `${empty.map((n) => `commands.${n}`).join(', ')}: must not be empty`;
  const problems = templateProblems(input.templates, profile);
  return problems.length ? problems.join('; ') : undefined;
}

export function handleTemplateUpdates(state: UpgradeState, inv: Inventory): void {
  setHandler(
    setTemplatesUpdate,
    (input) => {
      const commands = inv.commands as Partial<Record<CommandName, string>>;
      const changes: Record<string, { from: string; to: string }> = {};
      for (const [name, to] of Object.entries(input.templates)) {
        if (!isCommandName(name)) continue;
        changes[name] = { from: commands[name] ?? DEFAULT_COMMANDS[name], to };
        commands[name] = to;
      }
      const stepId = state.progress.pendingDecision?.stepId ?? '';
      (state.progress.templateChanges ??= []).push({
        at: state.now(),
        by: input.by,
        ...(input.reason ? { reason: input.reason } : {}),
        stepId,
        changes,
      });
      state.publish();
      return `changed ${Object.keys(changes).join(', ')} while ${stepId} is held; "retry" runs it with the new template${Object.keys(changes).length === 1 ? '' : 's'}`;
    },
    {
      validator: (input) => {
        const problem = templatesProblem(state, input, inv.profile ?? 'devstack');
        if (problem) throw new Error(problem);
      },
    },
  );
}
