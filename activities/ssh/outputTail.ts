// Keeps only the end of a stream: a chatty command (tempest, pip) must not grow the worker's
// memory or the workflow history, and the end is where the error usually is.
export const DEFAULT_OUTPUT_LIMIT_BYTES = 64 * 1024;

export class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;
  private droppedBytes = 0;

  constructor(private readonly limit = DEFAULT_OUTPUT_LIMIT_BYTES) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - this.chunks[0].length >= this.limit) {
      const dropped = this.chunks.shift()!;
      this.size -= dropped.length;
      this.droppedBytes += dropped.length;
    }
  }

  get bytes(): Buffer {
    const all = Buffer.concat(this.chunks);
    return all.length > this.limit ? all.subarray(all.length - this.limit) : all;
  }

  get truncated(): boolean {
    return this.droppedBytes > 0 || this.size > this.limit;
  }

  toString(): string {
    return this.bytes.toString('utf8');
  }
}
