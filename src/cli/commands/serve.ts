import type { Command } from 'commander';
import { BACKEND_ENV, readForcedBackend } from '@shared/system';
import { backendOption, defaultHome, commandAction } from '../output';

/** A fixed default, so an SSH port forward (ssh -L 8420:127.0.0.1:8420 gpu-box) keeps working across restarts. */
const DEFAULT_PORT = 8420;

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('web mode: serve the workbench UI and API on 127.0.0.1 with a random token in the printed URL')
    .option('--port <port>', 'port to listen on (0 picks a free one)', String(DEFAULT_PORT))
    .option('--data-dir <dir>', 'where the experiment store and the runs live (default ~/.mimir, or $MIMIR_HOME)')
    .addOption(backendOption())
    .action(
      commandAction(async (options: { port: string; backend?: string; dataDir?: string }) => {
        const port = Number(options.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535)
          throw new Error(`--port must be 0..65535, not "${options.port}".`);
        const [{ createAppService }, { forkLauncher }, { startWebServer }, { builtFile }] = await Promise.all([
          import('@service/app-service'),
          import('@jobs/channel'),
          import('@server/web-server'),
          import('@jobs/build-output'),
        ]);
        const forced = readForcedBackend(options.backend, process.env[BACKEND_ENV]);
        const dataDir = options.dataDir ?? defaultHome();
        // Take the data folder, then the port, and only then touch runs: a server that cannot serve
        // (the folder or the port is taken) leaves every run as it found it.
        const service = createAppService({
          launch: forkLauncher,
          forced,
          dataDir,
          owner: `mimir serve --port ${port}`,
          startJobs: false,
        });
        let server: Awaited<ReturnType<typeof startWebServer>>;
        try {
          server = await startWebServer({ service, rendererDir: builtFile('renderer'), port });
        } catch (error) {
          service.close();
          throw error;
        }
        service.startJobs();
        process.stdout.write(
          `MIMIR Workbench is serving on 127.0.0.1 only (data in ${dataDir}). Open:\n  ${server.url}\n`,
        );
        const stop = (): void =>
          void server.close().then(() => {
            service.close();
            process.exit(0);
          });
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      }),
    );
}
