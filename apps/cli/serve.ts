// p3s serve: the web app (apps/serve/) on the shipped toy models or real SD 1.5 and CLIP folders.
// The flags are declared once in SERVE_SETTINGS; the server, the job queue and the page do the
// rest. The process runs until SIGINT/SIGTERM, then stops the running job as a restart would (a
// training run writes a checkpoint and resumes at the next start).
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parse, settingsFromFlags, UsageError } from './args.js';
import { int, nullable, path, text } from '../../src/settings/kinds.js';
import {
  flagOptions,
  helpSections,
  resolveSettings,
  setting,
  type ValuesOf,
} from '../../src/settings/table.js';
import { SHIPPED_TOY_MODELS } from '../demo/settings.js';
import { hostRefusal } from '../serve/server.js';

const OPTIONS = 'Options';

/** The page's bundle, built at install time by scripts/build-page.mjs. */
const PAGE_DIR = fileURLToPath(new URL('../../../build/page', import.meta.url));

export const SERVE_SETTINGS = [
  setting({
    key: 'baseModel',
    kind: path,
    default: SHIPPED_TOY_MODELS,
    flag: 'base',
    placeholder: '<folder>',
    group: OPTIONS,
    help: 'Stable Diffusion folder (diffusers layout)',
    defaultHelp: 'default: the shipped toy models',
  }),
  setting({
    key: 'clipModel',
    kind: path,
    default: `${SHIPPED_TOY_MODELS}/image_encoder`,
    flag: 'clip',
    placeholder: '<folder>',
    group: OPTIONS,
    help: 'CLIP vision folder (transformers layout) for the masks',
    defaultHelp: "default: the toy models' image_encoder",
  }),
  setting({
    key: 'dataDir',
    kind: path,
    default: 'p3s-data',
    flag: 'data',
    placeholder: '<folder>',
    group: OPTIONS,
    help: 'where subjects, photos, jobs, adapters and images are kept (kept across restarts)',
    defaultHelp: 'default ./p3s-data',
  }),
  setting({
    key: 'host',
    kind: text,
    default: '127.0.0.1',
    flag: 'host',
    placeholder: '<address>',
    group: OPTIONS,
    help: 'address to listen on; any other than 127.0.0.1/localhost needs --token',
  }),
  setting({
    key: 'port',
    kind: int(0, 65535),
    default: 7860,
    flag: 'port',
    placeholder: '<n>',
    group: OPTIONS,
    help: 'port to listen on (0: any free port)',
  }),
  setting({
    key: 'token',
    kind: nullable(text),
    default: null,
    flag: 'token',
    placeholder: '<secret>',
    group: OPTIONS,
    help: 'every request must carry it (Authorization: Bearer, or ?token= in the URL); also read from P3S_TOKEN',
    defaultHelp: 'default: none (only on 127.0.0.1)',
  }),
] as const;

export type ServeSettings = ValuesOf<typeof SERVE_SETTINGS>;

const HELP = `Usage: p3s serve [options]

Starts the p3s web app and prints its URL: create a subject, drop in 3–8 photos, click the
subject (left click) and its look-alike (right click), watch the masks, train, and generate the
subject in new scenes. Long work runs in a child process, one job at a time, and everything is
kept in --data: a restart resumes a training run from its last checkpoint.

${helpSections(SERVE_SETTINGS)}
  -h, --help               this help
Threads: P3S_NUM_THREADS (default: all cores).`;

export const serveCommand = {
  summary: 'the web app: photos, clicks, masks, training and generation in a browser',
  async run(argv: string[]): Promise<void> {
    const { values, positionals } = parse(argv, flagOptions(SERVE_SETTINGS));
    if (values.help) {
      console.log(HELP);
      return;
    }
    if (positionals.length > 0) throw new UsageError(`Unexpected argument ${positionals[0]}`);
    const given = settingsFromFlags(SERVE_SETTINGS, values);
    const settings = resolveSettings(SERVE_SETTINGS, {
      ...given,
      token: given.token ?? process.env.P3S_TOKEN ?? null,
    });
    const refused = hostRefusal(settings.host, settings.token);
    if (refused) throw new UsageError(refused);
    await serve(settings);
  },
};

/** Opens the job queue and the server, prints the URL, and waits for a signal to stop. */
async function serve(s: ServeSettings): Promise<void> {
  const { LocalJobQueue } = await import('../../src/jobs/local_queue.js');
  const { startServer } = await import('../serve/server.js');
  // one job at a time per device, on all its cores
  const threads = Number(process.env.P3S_NUM_THREADS) || availableParallelism();
  const queue = await LocalJobQueue.open({ dataDir: s.dataDir, concurrency: 1, threads });
  const { url, close } = await startServer({
    dataDir: s.dataDir,
    baseModel: s.baseModel,
    clipModel: s.clipModel,
    queue,
    host: s.host,
    port: s.port,
    token: s.token ?? undefined,
    pageDir: PAGE_DIR,
  });
  console.log(`p3s serve: ${url}${s.token ? ' (requests need the token)' : ''}`);
  console.log(
    `Data: ${s.dataDir}. Ctrl-C stops (a running training run resumes at the next start).`,
  );
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  console.log('Stopping: the running job is checkpointed and resumes at the next start.');
  await close();
  await queue.close();
}
