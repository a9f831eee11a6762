// Test-only Node producer: publishes to BullMQ exactly as Broseph's NestJS API does (its
// BrosephPublisher: one queue, `broseph-jobs`, job name = job type, camelCase data), with the npm
// `bullmq` package.
//
//   REDIS_URL=redis://127.0.0.1:6379 node producer.mjs [queue] < jobs.json
//
// stdin: [{"publish": "promptGeneration" | "notification" | "engagement", "payload": {...},
//          "options": {...}}]   (options are BullMQ JobsOptions, spread over the defaults)
//        or {"publish": "add", "name": "SendPush", ...}: Queue.add under a job name no publisher
//          method has (a misnamed job), with the same defaults as publishPromptGeneration.
// stdout: [{"id": "...", "name": "...", "timestamp": 1234}] — one entry per job, in order.
//
// With TRACEPARENT set, the Queue is given a BullMQ `telemetry`, as a NestJS app tracing with
// OpenTelemetry gives it bullmq-otel's BullMQOtel: bullmq then stores the producer span's
// propagation carrier with each job (opts.tm in Redis). This one stands for the producer's
// active span with that fixed W3C traceparent (the producer side of tests/test_tracing.py).
import { Queue } from 'bullmq';

export const BROSEPH_QUEUE = 'broseph-jobs';

export const BROSEPH_JOBS = {
  GeneratePrompt: 'GeneratePrompt',
  SendNotification: 'SendNotification',
  ProcessEngagement: 'ProcessEngagement',
};

// Same defaults as the NestJS publisher; `...options` lets a caller override them (delay, jobId…).
export class BrosephPublisher {
  constructor(queue) {
    this.queue = queue;
  }

  async publishPromptGeneration(payload, options) {
    return this.queue.add(BROSEPH_JOBS.GeneratePrompt, payload, {
      attempts: 3,
      backoff: { type: 'exponential', delay: 1000 },
      ...options,
    });
  }

  async publishNotification(payload, options) {
    return this.queue.add(BROSEPH_JOBS.SendNotification, payload, {
      attempts: 3,
      backoff: { type: 'exponential', delay: 500 },
      ...options,
    });
  }

  // BROSEPH_JOBS names ProcessEngagement; the NestJS code publishes it the same way.
  async publishEngagement(payload, options) {
    return this.queue.add(BROSEPH_JOBS.ProcessEngagement, payload, {
      attempts: 3,
      backoff: { type: 'exponential', delay: 1000 },
      ...options,
    });
  }

  // Not in the brief: a job under any other name, published like the others.
  async publishAs(name, payload, options) {
    return this.queue.add(name, payload, {
      attempts: 3,
      backoff: { type: 'exponential', delay: 1000 },
      ...options,
    });
  }
}

const METHODS = {
  promptGeneration: 'publishPromptGeneration',
  notification: 'publishNotification',
  engagement: 'publishEngagement',
};

// BullMQ's Telemetry interface (bullmq's interfaces/telemetry.ts): spans are no-ops here; the
// context manager's getMetadata is what bullmq-otel returns, propagation.inject's carrier.
function producerTelemetry(traceparent) {
  const span = {
    setSpanOnContext: (ctx) => ctx,
    setAttribute() {},
    setAttributes() {},
    addEvent() {},
    recordException() {},
    end() {},
  };
  return {
    tracer: { startSpan: () => span },
    contextManager: {
      with: (_ctx, fn) => fn(),
      active: () => ({}),
      getMetadata: () => ({ traceparent }),
      fromMetadata: (active) => active,
    },
  };
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '[]');
}

async function main() {
  const queueName = process.argv[2] || BROSEPH_QUEUE;
  const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  const traceparent = process.env.TRACEPARENT;
  const queue = new Queue(queueName, {
    connection: { url },
    ...(traceparent ? { telemetry: producerTelemetry(traceparent) } : {}),
  });
  const publisher = new BrosephPublisher(queue);
  const out = [];
  try {
    for (const item of await readStdin()) {
      let job;
      if (item.publish === 'add') {
        job = await publisher.publishAs(item.name, item.payload, item.options);
      } else {
        const method = METHODS[item.publish];
        if (!method) throw new Error(`unknown publish kind ${JSON.stringify(item.publish)}`);
        job = await publisher[method](item.payload, item.options);
      }
      out.push({ id: job.id, name: job.name, timestamp: job.timestamp });
    }
  } finally {
    await queue.close();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
