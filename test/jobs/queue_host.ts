// A stand-in for the server in restart.test.ts: opens a queue on a data folder, submits the job
// given as JSON, and prints "ready <id>" once the job has reported `steps` steps; then it waits
// to be killed, as a server would be.
import { LocalJobQueue, type JobInput } from '../../src/jobs/index.js';

const [dataDir, inputJson, steps] = process.argv.slice(2);
if (dataDir === undefined || inputJson === undefined || steps === undefined) {
  console.error('Usage: queue_host.js <dataDir> <job input as JSON> <steps before ready>');
  process.exit(2);
}
const queue = await LocalJobQueue.open({ dataDir });
let told = false;
queue.subscribe((e) => {
  if (!told && e.type === 'progress' && e.job.progress!.done >= Number(steps)) {
    told = true;
    process.stdout.write(`ready ${e.job.id}\n`);
  }
  if (e.type === 'finished') process.stdout.write(`finished ${e.job.state}\n`);
});
await queue.submit(JSON.parse(inputJson) as JobInput);
setInterval(() => undefined, 60_000); // a server lives until it is stopped
