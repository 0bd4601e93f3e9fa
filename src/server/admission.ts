// Admission control, in sequences. One API request becomes prompts × n engine sequences, each with its own KV
// blocks and its own place in the wait queue, so that is what the limits count:
//   - per request: at most --max-num-seqs sequences (what the engine runs at once), and at most --max-queue
//     when that is smaller (a request larger than the whole queue could never be admitted): a 400;
//   - the queue: the sequences waiting in the engine, plus those admitted but still being tokenized, plus
//     this request's, must fit in --max-queue, or it is a 503 with Retry-After.
// Both are decided from the request's shape alone, before anything is tokenized or allocated.
import type { FastifyReply } from 'fastify';
import type { ServerContext } from './context.js';
import { ApiError, invalid } from './errors.js';
import type { ModelSlot, ServedModel } from './model-slot.js';

/** A request's places in the queue, held from admission until its sequences are in the engine. */
export class Admission {
  private held: number;

  constructor(
    private readonly slot: ModelSlot,
    readonly sequences: number,
  ) {
    this.held = sequences;
    slot.admittedSequences += sequences;
  }

  /** Idempotent: once submitted (the engine counts them as waiting now) or once the request ends. */
  release(): void {
    this.slot.admittedSequences -= this.held;
    this.held = 0;
  }
}

/**
 * Admits `prompts` × `n` sequences or throws: a 400 naming `promptParam` (or `n`) when the request alone is
 * over the per-request bound, a 503 queue_full when the queue has no room for it now. The places are given
 * back on submission (startGeneration) or when the reply ends, whichever comes first.
 */
export function admit(
  _ctx: ServerContext,
  model: ServedModel,
  reply: FastifyReply,
  prompts: number,
  n: number,
  promptParam: string,
): Admission {
  const sequences = prompts * n;
  const { slot } = model; // the queue and its bound are the model's own
  const queueBound = slot.maxQueue > 0 && slot.maxQueue < model.maxNumSeqs;
  const perRequest = queueBound ? slot.maxQueue : model.maxNumSeqs;
  if (sequences > perRequest) {
    const shape = `${prompts} prompt${prompts === 1 ? '' : 's'} × n ${n} = ${sequences} sequences`;
    const flag = queueBound ? `--max-queue ${slot.maxQueue}` : `--max-num-seqs ${model.maxNumSeqs}`;
    throw invalid(
      `this request asks for ${shape}; the server takes at most ${perRequest} per request (${flag})`,
      prompts > perRequest ? promptParam : 'n',
    );
  }
  if (slot.maxQueue > 0) {
    const waiting = model.client.stats().numWaiting + slot.admittedSequences;
    if (waiting + sequences > slot.maxQueue) {
      throw new ApiError(
        'queue_full',
        `the server is overloaded (${waiting} sequences waiting, this request adds ${sequences}, --max-queue ${slot.maxQueue}); retry later`,
        null,
        1,
      );
    }
  }
  const admission = new Admission(slot, sequences);
  reply.raw.once('close', () => admission.release());
  return admission;
}
