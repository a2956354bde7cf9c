// A line diff for people (longest common subsequence): [[op, line]], op ' ', '-' or '+'.
// Quadratic, so past MAX cells it gives up on alignment and shows all of a, then all of b.
const MAX = 4_000_000;

export function diffLines(a, b) {
  const x = a === '' ? [] : a.split('\n');
  const y = b === '' ? [] : b.split('\n');
  // common head and tail first: most edits touch a few lines of a long text
  let head = 0;
  while (head < x.length && head < y.length && x[head] === y[head]) head++;
  let tail = 0;
  while (tail < x.length - head && tail < y.length - head && x[x.length - 1 - tail] === y[y.length - 1 - tail]) tail++;
  const xs = x.slice(head, x.length - tail);
  const ys = y.slice(head, y.length - tail);
  const out = x.slice(0, head).map((l) => [' ', l]);
  const n = xs.length;
  const m = ys.length;
  if (n * m > MAX) {
    for (const l of xs) out.push(['-', l]);
    for (const l of ys) out.push(['+', l]);
  } else {
    // lcs[i][j]: the longest common subsequence of xs[i..] and ys[j..]
    const w = m + 1;
    const lcs = new Uint32Array((n + 1) * w);
    for (let i = n - 1; i >= 0; i--)
      for (let j = m - 1; j >= 0; j--)
        lcs[i * w + j] = xs[i] === ys[j] ? lcs[(i + 1) * w + j + 1] + 1 : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
      if (xs[i] === ys[j]) {
        out.push([' ', xs[i]]);
        i++;
        j++;
      } else if (lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) out.push(['-', xs[i++]]);
      else out.push(['+', ys[j++]]);
    }
    while (i < n) out.push(['-', xs[i++]]);
    while (j < m) out.push(['+', ys[j++]]);
  }
  for (const l of x.slice(x.length - tail)) out.push([' ', l]);
  return out;
}
