// `nova-upgrade server start|stop|status`: a local Temporal that keeps its state. `--stack dev`
// (the default) is the CLI's dev server on a SQLite file; `--stack postgres` is the team stack of
// docker-compose.yml run natively (PostgreSQL, the Temporal server, the UI server).
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { devServerStatus, startDevServer, stopDevServer } from './devServer';
import { defaultStateDir } from './paths';
import {
  startTeamStack,
  stopTeamStack,
  TEAM_STACK_DEFAULTS,
  TeamStackError,
  teamStackStatus,
  type ComponentStatus,
} from './teamStack';

type Stack = 'dev' | 'postgres';

const devDir = (o: { stateDir: string }) => join(o.stateDir, 'temporal');
const stackDir = (o: { stateDir: string }) => join(o.stateDir, 'stack');

function stackOption(): Option {
  return new Option('--stack <kind>', 'dev: the CLI dev server on SQLite; postgres: the compose stack natively')
    .choices(['dev', 'postgres'])
    .default('dev');
}

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535)
    throw new InvalidArgumentError(`"${value}" is not a port number from 1 to 65535`);
  return n;
}

function componentLine(name: string, c: ComponentStatus): string {
  return `  ${name.padEnd(9)} ${c.running ? `running (pid ${c.pid}, ${c.answering ? 'answering' : 'not answering'})` : 'not running'}; log ${c.log}`;
}

export function serverCommand(): Command {
  const server = new Command('server').description(
    'a local Temporal: the dev server (SQLite) or the team stack (PostgreSQL, server, UI server)',
  );
  server
    .command('start')
    .addOption(stackOption())
    .option('--state-dir <dir>', 'project state directory', defaultStateDir())
    .option('--port <n>', `frontend port (default 7233)`, port)
    .option('--ui-port <n>', `Web UI port (default 8233; ${TEAM_STACK_DEFAULTS.uiPort} with --stack postgres)`, port)
    .option('--ip <address>', `loopback address of the postgres stack (default ${TEAM_STACK_DEFAULTS.ip})`)
    .option('--pg-port <n>', `PostgreSQL port of the postgres stack (default ${TEAM_STACK_DEFAULTS.pgPort})`, port)
    .action(
      async (o: { stack: Stack; stateDir: string; port?: number; uiPort?: number; ip?: string; pgPort?: number }) => {
        if (o.stack === 'postgres') {
          const s = await startTeamStack({
            stateDir: stackDir(o),
            ...(o.ip !== undefined ? { ip: o.ip } : {}),
            ...(o.port !== undefined ? { port: o.port } : {}),
            ...(o.uiPort !== undefined ? { uiPort: o.uiPort } : {}),
            ...(o.pgPort !== undefined ? { pgPort: o.pgPort } : {}),
          });
          const what = s.alreadyRunning ? 'already running' : `started (${s.started.join(', ')})`;
          process.stdout.write(
            `Temporal team stack ${what}: frontend ${s.address}, Web UI ${s.uiUrl}, PostgreSQL ${s.postgres} (password in ${s.passwordFile})\n`,
          );
          if (s.attributesMissingFromScript.length) {
            process.stderr.write(
              `warning: deploy/compose/create-search-attributes.sh lacks ${s.attributesMissingFromScript.join(', ')}; created them anyway\n`,
            );
          }
          return;
        }
        if (o.ip !== undefined || o.pgPort !== undefined)
          throw new TeamStackError(
            '--ip and --pg-port apply to --stack postgres only; the dev server takes --port and --ui-port',
          );
        const s = await startDevServer({ stateDir: devDir(o), port: o.port ?? 7233, uiPort: o.uiPort ?? 8233 });
        process.stdout.write(
          `Temporal ${s.alreadyRunning ? 'already running' : 'started'} at ${s.address} (pid ${s.pid}); Web UI ${s.uiUrl}\n`,
        );
      },
    );
  server
    .command('stop')
    .addOption(stackOption())
    .option('--state-dir <dir>', 'project state directory', defaultStateDir())
    .action(async (o: { stack: Stack; stateDir: string }) => {
      if (o.stack === 'postgres') {
        const r = await stopTeamStack(stackDir(o));
        process.stdout.write(
          r.stopped.length
            ? `stopped ${r.stopped.join(', ')}${r.killed.length ? ` (${r.killed.join(', ')} needed SIGKILL)` : ''}\n`
            : 'not running\n',
        );
        return;
      }
      const r = await stopDevServer(devDir(o));
      process.stdout.write(r.wasRunning ? `stopped (pid ${r.pid})\n` : 'not running\n');
    });
  server
    .command('status')
    .addOption(stackOption())
    .option('--state-dir <dir>', 'project state directory', defaultStateDir())
    .action(async (o: { stack: Stack; stateDir: string }) => {
      if (o.stack === 'postgres') {
        const s = await teamStackStatus(stackDir(o));
        const lines = [
          s.address
            ? `team stack: frontend ${s.address}, Web UI ${s.uiUrl}, namespace ${s.namespace}`
            : `team stack: never started in ${stackDir(o)}`,
        ];
        lines.push(
          componentLine('postgres', s.postgres),
          componentLine('temporal', s.temporal),
          componentLine('ui', s.ui),
        );
        process.stdout.write(`${lines.join('\n')}\n`);
        return;
      }
      const s = await devServerStatus(devDir(o));
      process.stdout.write(
        s.running
          ? `running at ${s.address} (pid ${s.pid}, ${s.answering ? 'answering' : 'not answering'}); Web UI ${s.uiUrl}\n`
          : `not running (database ${s.dbFile})\n`,
      );
    });
  return server;
}
