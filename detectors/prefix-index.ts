// Longest-prefix lookup over codes, shared by the catalogs and the rule tables.

/**
 * A node of a radix tree: the edge into it is `label` (one or more characters), so a chain of
 * single-child characters is one node, and leaves have no children map at all. A 56,500-row rule
 * table then costs a few nodes per row instead of one map-holding node per character.
 */
interface RadixNode<V> {
  label: string;
  value: V | undefined;
  children: Map<number, RadixNode<V>> | undefined;
}

const node = <V>(label: string, value: V | undefined): RadixNode<V> => ({
  label,
  value,
  children: undefined,
});

/**
 * Longest-prefix lookup: a walk down a radix tree, at most one step per character of the code and
 * no allocation, never a scan over all prefixes.
 */
export class PrefixIndex<V> {
  private readonly root: RadixNode<V> = node<V>("", undefined);
  private count = 0;

  /** The child of `n` whose edge starts with the character of `s` at `at`. */
  private static child<V>(n: RadixNode<V>, s: string, at: number): RadixNode<V> | undefined {
    return n.children?.get(s.charCodeAt(at));
  }

  private static link<V>(parent: RadixNode<V>, child: RadixNode<V>): void {
    parent.children ??= new Map();
    parent.children.set(child.label.charCodeAt(0), child);
  }

  get(prefix: string): V | undefined {
    let n: RadixNode<V> | undefined = this.root;
    let i = 0;
    while (n && i < prefix.length) {
      n = PrefixIndex.child(n, prefix, i);
      if (!n || !prefix.startsWith(n.label, i)) return undefined;
      i += n.label.length;
    }
    return n?.value;
  }

  add(prefix: string, value: V): void {
    let n = this.root;
    let i = 0;
    while (i < prefix.length) {
      const next = PrefixIndex.child(n, prefix, i);
      if (!next) {
        PrefixIndex.link(n, node(prefix.slice(i), value));
        this.count++;
        return;
      }
      let common = 1;
      while (common < next.label.length && next.label[common] === prefix[i + common]) common++;
      if (common < next.label.length) {
        // The new prefix leaves (or ends inside) this edge: split it where they part.
        const mid = node<V>(next.label.slice(0, common), undefined);
        next.label = next.label.slice(common);
        PrefixIndex.link(mid, next);
        PrefixIndex.link(n, mid);
        n = mid;
      } else n = next;
      i += common;
    }
    if (n.value === undefined) this.count++;
    n.value = value;
  }

  longest(code: string): V | undefined {
    let found: V | undefined;
    let n: RadixNode<V> | undefined = this.root;
    let i = 0;
    while (i < code.length) {
      n = PrefixIndex.child(n, code, i);
      if (!n || !code.startsWith(n.label, i)) break;
      i += n.label.length;
      if (n.value !== undefined) found = n.value;
    }
    return found;
  }

  /** Calls `visit` with the entry of every prefix of `code`, shortest first: one walk. */
  eachPrefix(code: string, visit: (value: V) => void): void {
    let n: RadixNode<V> | undefined = this.root;
    let i = 0;
    while (i < code.length) {
      n = PrefixIndex.child(n, code, i);
      if (!n || !code.startsWith(n.label, i)) return;
      i += n.label.length;
      if (n.value !== undefined) visit(n.value);
    }
  }

  /**
   * An entry whose prefix is a prefix of `prefix` or extends it, i.e. one that some code matching
   * `prefix` also matches; undefined when none does.
   */
  overlapping(prefix: string): V | undefined {
    let n: RadixNode<V> | undefined = this.root;
    let i = 0;
    while (i < prefix.length) {
      if (n.value !== undefined) return n.value;
      n = PrefixIndex.child(n, prefix, i);
      if (!n) return undefined;
      const rest = prefix.length - i;
      // `prefix` ends inside this edge: every entry below extends it.
      if (rest < n.label.length) return n.label.startsWith(prefix.slice(i)) ? PrefixIndex.any(n) : undefined;
      if (!prefix.startsWith(n.label, i)) return undefined;
      i += n.label.length;
    }
    return PrefixIndex.any(n);
  }

  /** Some entry at or below `n`. */
  private static any<V>(n: RadixNode<V>): V | undefined {
    const stack = [n];
    for (let m = stack.pop(); m; m = stack.pop()) {
      if (m.value !== undefined) return m.value;
      if (m.children) stack.push(...m.children.values());
    }
    return undefined;
  }

  get size(): number {
    return this.count;
  }
}
