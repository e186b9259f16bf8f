// The child side of experiment_process.ts: receives one experiment's options, runs it with its
// own probe, reports progress and the result, and exits. Started by runExperimentInChild only.
import { join } from 'node:path';
import { AttributeProbe } from './probe.js';
import { runSubjectExperiment } from './experiment.js';
import type { ChildExperimentOptions, WorkerMessage } from './experiment_process.js';
import { postToParent, tellParent } from '../../src/jobs/parent_channel.js';

const post = (m: WorkerMessage): Promise<void> => postToParent(m);
const tell = (m: WorkerMessage): void => tellParent(m);
let finished = false;

async function run(options: ChildExperimentOptions): Promise<void> {
  const probe = AttributeProbe.load(join(options.modelFolder, 'probe'));
  try {
    const result = await runSubjectExperiment({
      ...options,
      probe,
      onTrainProgress: (progress) => tell({ kind: 'train', progress }),
      onGenerateProgress: (progress) => tell({ kind: 'generate', progress }),
    });
    await post({ kind: 'result', result });
  } finally {
    probe.dispose();
  }
}

if (!process.send) {
  console.error('experiment_worker is started by runExperimentInChild, not on its own');
  process.exit(2);
}
process.once('message', (raw) => {
  const m = raw as { kind: 'run'; options: ChildExperimentOptions };
  run(m.options)
    .catch(async (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      await post({ kind: 'error', name: e.name, message: e.message }).catch(() => undefined);
      process.exitCode = 1;
    })
    .finally(() => {
      finished = true;
      process.disconnect();
    });
});
// The parent is gone (killed, or its run interrupted): nobody waits for this experiment.
process.on('disconnect', () => {
  if (!finished) process.exit(1);
});
