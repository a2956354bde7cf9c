// DOM helpers. Everything that came from a model, a tool, an MCP server or a user is
// put in the page as text (textContent, attributes by name), never parsed as HTML.
export function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') n.className = v;
    else if (k === 'text') n.textContent = v;
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return n;
}

// The text of a content array (text blocks; others by their type).
export function blocksText(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((b) => (b?.type === 'text' ? b.text : `[${b?.type ?? 'block'}]`))
    .join('\n');
}

export function json(v) {
  return JSON.stringify(v, null, 2);
}

// "3 min ago" from an RFC 3339 time.
export function age(ts, now = Date.now()) {
  const t = Date.parse(ts);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function statusBadge(status) {
  return el('span', { class: `badge status-${String(status).replace(/[^a-z_]/g, '')}`, text: status });
}
