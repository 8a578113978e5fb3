// A binary min-heap with a caller's ordering; the queue's active and backoff lists.
export interface Heap<T> {
  push(item: T): void;
  pop(): T | undefined;
  peek(): T | undefined;
  readonly size: number;
  clear(): void;
}

/** `less(a, b)`: a comes out before b. */
export function createHeap<T>(less: (a: T, b: T) => boolean): Heap<T> {
  const items: T[] = [];
  const swap = (i: number, j: number) => {
    const t = items[i];
    items[i] = items[j];
    items[j] = t;
  };
  const up = (i: number) => {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(items[i], items[parent])) return;
      swap(i, parent);
      i = parent;
    }
  };
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < items.length && less(items[l], items[m])) m = l;
      if (r < items.length && less(items[r], items[m])) m = r;
      if (m === i) return;
      swap(i, m);
      i = m;
    }
  };
  return {
    push(item) {
      items.push(item);
      up(items.length - 1);
    },
    pop() {
      if (items.length === 0) return undefined;
      const top = items[0];
      const last = items.pop()!;
      if (items.length > 0) {
        items[0] = last;
        down(0);
      }
      return top;
    },
    peek: () => items[0],
    get size() {
      return items.length;
    },
    clear() {
      items.length = 0;
    },
  };
}
