// Longest-prefix lookup over codes, shared by the catalogs and the rule tables.
interface TrieNode<V> {
  children: Map<number, TrieNode<V>>;
  value: V | undefined;
}

/**
 * Longest-prefix lookup: a walk down a character trie, at most one step per character of the
 * code and no allocation, never a scan over all prefixes.
 */
export class PrefixIndex<V> {
  private readonly root: TrieNode<V> = { children: new Map(), value: undefined };
  private count = 0;

  get(prefix: string): V | undefined {
    let node: TrieNode<V> | undefined = this.root;
    for (let i = 0; i < prefix.length && node; i++) node = node.children.get(prefix.charCodeAt(i));
    return node?.value;
  }

  add(prefix: string, value: V): void {
    let node = this.root;
    for (let i = 0; i < prefix.length; i++) {
      const c = prefix.charCodeAt(i);
      let next = node.children.get(c);
      if (!next) {
        next = { children: new Map(), value: undefined };
        node.children.set(c, next);
      }
      node = next;
    }
    if (node.value === undefined) this.count++;
    node.value = value;
  }

  longest(code: string): V | undefined {
    let found: V | undefined;
    let node: TrieNode<V> | undefined = this.root;
    for (let i = 0; i < code.length; i++) {
      node = node.children.get(code.charCodeAt(i));
      if (!node) break;
      if (node.value !== undefined) found = node.value;
    }
    return found;
  }

  /** Calls `visit` with the entry of every prefix of `code`, shortest first: one walk. */
  eachPrefix(code: string, visit: (value: V) => void): void {
    let node: TrieNode<V> | undefined = this.root;
    for (let i = 0; i < code.length; i++) {
      node = node.children.get(code.charCodeAt(i));
      if (!node) return;
      if (node.value !== undefined) visit(node.value);
    }
  }

  /**
   * An entry whose prefix is a prefix of `prefix` or extends it, i.e. one that some code matching
   * `prefix` also matches; undefined when none does.
   */
  overlapping(prefix: string): V | undefined {
    let node: TrieNode<V> | undefined = this.root;
    for (let i = 0; i < prefix.length; i++) {
      if (node.value !== undefined) return node.value;
      node = node.children.get(prefix.charCodeAt(i));
      if (!node) return undefined;
    }
    const stack = [node];
    for (let n = stack.pop(); n; n = stack.pop()) {
      if (n.value !== undefined) return n.value;
      stack.push(...n.children.values());
    }
    return undefined;
  }

  get size(): number {
    return this.count;
  }
}
