// GET /api/events: every JobEvent as a server-sent event ("data: <json>\n\n"), a comment line
// every 15 s so proxies and browsers keep the connection, the listener dropped when the client
// goes. Open streams are ended when the server closes (else close would wait for them), and a
// stream's connection closes with it: kept alive, its socket could be busy when the server
// closes idle connections and then hold up close until the keep-alive timeout, which, being
// unref'd, lets a process with nothing else to do exit with close still pending.
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { JobEvent } from '../../../src/jobs/job.js';
import type { ServerContext } from '../context.js';

export const HEARTBEAT_MS = 15_000;

export function eventRoutes(
  app: FastifyInstance,
  ctx: ServerContext,
  heartbeatMs = HEARTBEAT_MS,
): void {
  const open = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of open) res.end();
  });

  app.get('/api/events', (request, reply) => {
    reply.hijack(); // the stream is written by hand from here on
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'close',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n: connected\n\n'); // sends the headers: the client's open event
    open.add(res);
    const send = (event: JobEvent) => res.write(`data: ${JSON.stringify(event)}\n\n`);
    const unsubscribe = ctx.queue.subscribe(send);
    const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);
    const stop = () => {
      clearInterval(heartbeat);
      unsubscribe();
      open.delete(res);
    };
    request.raw.on('close', stop);
    res.on('close', stop);
    res.on('error', stop);
  });
}
