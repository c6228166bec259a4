// Tiny DOM builder. All text goes through textContent, never innerHTML, so data from the API
// (filenames, clinical notes, error reasons) cannot inject markup.

type Child = Node | string | number | null | undefined | false;
type AttrValue = string | number | boolean | null | undefined;

export interface ElOptions {
  class?: string;
  attrs?: Record<string, AttrValue>;
  /** data-* attributes without the "data-" prefix, e.g. { testid: "case-row" }. */
  data?: Record<string, AttrValue>;
  on?: Partial<{ [K in keyof HTMLElementEventMap]: (ev: HTMLElementEventMap[K]) => void }>;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  opts: ElOptions = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (opts.class) node.className = opts.class;
  for (const [name, value] of Object.entries(opts.attrs ?? {})) setAttr(node, name, value);
  for (const [name, value] of Object.entries(opts.data ?? {})) setAttr(node, `data-${name}`, value);
  for (const [type, handler] of Object.entries(opts.on ?? {})) {
    node.addEventListener(type, handler as EventListener);
  }
  append(node, ...children);
  return node;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function setAttr(node: Element, name: string, value: AttrValue): void {
  if (value === null || value === undefined || value === false) return;
  node.setAttribute(name, value === true ? "" : String(value));
}

/** Remove all children of `node`, then append `children`. */
export function replaceChildren(node: Element, ...children: Child[]): void {
  node.replaceChildren();
  append(node, ...children);
}
