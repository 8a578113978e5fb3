// A minimal push-driven AsyncIterable: the request side of a bidi stream whose next message
// depends on the server's answer to the previous one (Content/Write).

export interface PushQueue<T> extends AsyncIterable<T> {
  push(item: T): void;
  /** No more items: the iterator finishes once the buffered ones are taken. */
  end(): void;
}

export function createPushQueue<T>(): PushQueue<T> {
  const items: T[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  return {
    push(item) {
      if (ended) throw new Error("push after end");
      items.push(item);
      notify();
    },
    end() {
      ended = true;
      notify();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (items.length > 0) {
          yield items.shift() as T;
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}
