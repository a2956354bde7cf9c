// A small, safe subset of Markdown for what a model writes, built as DOM nodes (never
// HTML): paragraphs, headings, fenced code, lists, quotes, `code`, **strong**, *em*.
// Links and images are shown as their text and address, never as links or requests (a
// model's link can be a trap, and the console loads nothing from elsewhere); raw HTML is
// text. Underscores are not emphasis: they are common in names and code.
import { el } from './render.js';

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$/;
const BULLET = /^ {0,3}[-*+][ \t]+(.*)$/;
const ORDERED = /^ {0,3}(\d{1,9})[.)][ \t]+(.*)$/;
const QUOTE = /^ {0,3}>[ \t]?(.*)$/;
// The inline patterns can take time quadratic in a block's length: longer blocks are
// shown as they are (text), and longer messages are not parsed at all.
const INLINE_MAX = 5000;
const TEXT_MAX = 100_000;

// Inline: code spans first (nothing inside them is markup), then links and images as
// text, then **strong** and *em*.
function inline(text) {
  if (text.length > INLINE_MAX) return [text];
  const out = [];
  const re = /(`+)([\s\S]*?[^`])\1(?!`)|!?\[([^\]\n]*)\]\(([^)\s]*)\)|\*\*(?=\S)([\s\S]*?\S)\*\*|\*(?=[^\s*])([\s\S]*?[^\s*])\*/g;
  let last = 0;
  for (let m; (m = re.exec(text)); ) {
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[1]) out.push(el('code', { text: m[2].replace(/^ (.*) $/, '$1') }));
    else if (m[4] !== undefined) {
      const image = m[0].startsWith('!');
      out.push(el('span', { class: 'md-link', text: `${image ? '[image: ' : ''}${m[3]}${image ? ']' : ''}` }), ' ', el('span', { class: 'md-url', text: `<${m[4]}>` }));
    } else if (m[5] !== undefined) out.push(el('strong', {}, inline(m[5])));
    else out.push(el('em', {}, inline(m[6])));
    last = re.lastIndex;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

// The nodes for text (a DocumentFragment).
export function markdown(text) {
  const frag = document.createDocumentFragment();
  if (String(text ?? '').length > TEXT_MAX) {
    frag.append(el('p', { text: String(text) }));
    return frag;
  }
  const lines = String(text ?? '').replace(/\r\n?/g, '\n').split('\n');
  let para = [];
  const flush = () => {
    if (para.length) frag.append(el('p', {}, inline(para.join('\n'))));
    para = [];
  };
  for (let i = 0; i < lines.length; ) {
    const line = lines[i];
    let m;
    if ((m = FENCE.exec(line))) {
      flush();
      const close = m[1][0];
      const body = [];
      for (i++; i < lines.length && !new RegExp(`^ {0,3}\\${close}{${m[1].length},}\\s*$`).test(lines[i]); i++) body.push(lines[i]);
      i++; // the closing fence, or the end
      frag.append(el('pre', { class: 'md-code' }, el('code', { text: body.join('\n') })));
    } else if ((m = HEADING.exec(line))) {
      flush();
      frag.append(el('p', { class: `md-h md-h${m[1].length}` }, el('strong', {}, inline(m[2]))));
      i++;
    } else if (BULLET.test(line) || ORDERED.test(line)) {
      flush();
      const ordered = !BULLET.test(line);
      const pat = ordered ? ORDERED : BULLET;
      const list = el(ordered ? 'ol' : 'ul', { class: 'md-list' });
      if (ordered) {
        const start = Number(ORDERED.exec(line)[1]);
        if (start !== 1) list.setAttribute('start', String(start));
      }
      for (; i < lines.length && (m = pat.exec(lines[i])); i++) list.append(el('li', {}, inline(ordered ? m[2] : m[1])));
      frag.append(list);
    } else if (QUOTE.test(line)) {
      flush();
      const body = [];
      for (; i < lines.length && (m = QUOTE.exec(lines[i])); i++) body.push(m[1]);
      frag.append(el('blockquote', {}, inline(body.join('\n'))));
    } else if (line.trim() === '') {
      flush();
      i++;
    } else {
      para.push(line);
      i++;
    }
  }
  flush();
  return frag;
}
