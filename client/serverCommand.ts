// `nova-upgrade server start|stop|status`: a local Temporal dev server that keeps its state.
import { join } from 'node:path';
import { Command } from 'commander';
import { devServerStatus, startDevServer, stopDevServer } from './devServer';
import { defaultStateDir } from './paths';

const dir = (o: { stateDir: string }) => join(o.stateDir, 'temporal');

export function serverCommand(): Command {
  const server = new Command('server').description('a local Temporal dev server (SQLite under the state dir, Web UI, search attributes)');
  server
    .command('start')
    .option('--state-dir <dir>', 'project state directory', defaultStateDir())
    .option('--port <n>', 'frontend port', '7233')
    .option('--ui-port <n>', 'Web UI port', '8233')
    .action(async (o: { stateDir: string; port: string; uiPort: string }) => {
      const s = await startDevServer({ stateDir: dir(o), port: Number(o.port), uiPort: Number(o.uiPort) });
      process.stdout.write(`Temporal ${s.alreadyRunning ? 'already running' : 'started'} at ${s.address} (pid ${s.pid}); Web UI ${s.uiUrl}\n`);
    });
  server
    .command('stop')
    .option('--state-dir <dir>', 'project state directory', defaultStateDir())
    .action(async (o: { stateDir: string }) => {
      const r = await stopDevServer(dir(o));
      process.stdout.write(r.wasRunning ? `stopped (pid ${r.pid})\n` : 'not running\n');
    });
  server
    .command('status')
    .option('--state-dir <dir>', 'project state directory', defaultStateDir())
    .action(async (o: { stateDir: string }) => {
      const s = await devServerStatus(dir(o));
      process.stdout.write(s.running ? `running at ${s.address} (pid ${s.pid}, ${s.answering ? 'answering' : 'not answering'}); Web UI ${s.uiUrl}\n` : `not running (database ${s.dbFile})\n`);
    });
  return server;
}
