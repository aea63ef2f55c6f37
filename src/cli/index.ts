/**
 * The `mimir` command line: the engine and the store without a window. bin/mimir.mjs loads the
 * build of this file after checking the Node version.
 */
import { Command, Option } from 'commander';
import { BACKEND_NAMES, readForcedBackend } from '../shared/system';
import { formatDoctorReport } from './doctor';

const program = new Command()
  .name('mimir')
  .description('MIMIR Workbench: adversarial MAE pre-training, adversarial fine-tuning and robust evaluation of ViTs.')
  .showHelpAfterError();

const backendOption = (): Option =>
  new Option('--backend <name>', 'force a TensorFlow.js backend (or set MIMIR_BACKEND)').choices(BACKEND_NAMES);

/** Print an error the way the command's output mode expects, and exit non-zero. */
function fail(error: unknown, json: boolean): never {
  const message = error instanceof Error ? error.message : String(error);
  if (json) process.stdout.write(`${JSON.stringify({ type: 'failed', message })}\n`);
  else process.stderr.write(`mimir: ${message}\n`);
  process.exit(1);
}

program
  .command('doctor')
  .description('show the compute backend this machine gets, every candidate and why it was passed over, and the GPU found')
  .option('--json', 'print one JSON object')
  .addOption(backendOption())
  .action(async (options: { json?: boolean; backend?: string }) => {
    const json = options.json === true;
    try {
      const { selectBackend } = await import('../engine/backend');
      const report = await selectBackend(readForcedBackend(options.backend, process.env.MIMIR_BACKEND), 'cli');
      process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctorReport(report)}\n`);
    } catch (error) {
      fail(error, json);
    }
  });

program
  .command('serve')
  .description('web mode: serve the workbench UI and API on 127.0.0.1 with a random token in the printed URL')
  .option('--port <port>', 'port to listen on (0 picks a free one)', '0')
  .addOption(backendOption())
  .action(async (options: { port: string; backend?: string }) => {
    try {
      const port = Number(options.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be 0..65535, not "${options.port}".`);
      const [{ createAppService }, { forkLauncher }, { startWebServer }, { builtFile }] = await Promise.all([
        import('../service/app-service'),
        import('../jobs/channel'),
        import('../server/web-server'),
        import('../jobs/build-output'),
      ]);
      const forced = readForcedBackend(options.backend, process.env.MIMIR_BACKEND);
      const service = createAppService({ launch: forkLauncher, forced });
      const server = await startWebServer({ service, rendererDir: builtFile('renderer'), port });
      process.stdout.write(`MIMIR Workbench is serving on 127.0.0.1 only. Open:\n  ${server.url}\n`);
      const stop = (): void => void server.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    } catch (error) {
      fail(error, false);
    }
  });

await program.parseAsync(process.argv);
