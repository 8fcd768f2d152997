// Command groups shared by several CLI modules (e.g. `nodes`): the first module to ask creates the group, later ones add to it.
import type { Command } from 'commander';

export function commandGroup(program: Command, name: string, description: string): Command {
  return program.commands.find((c) => c.name() === name) ?? program.command(name).description(description);
}
