// Small helpers for tests that drive the official SDK: walk every page of a list, and
// expect an API error with a given status (and message).
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';

export async function all(pagePromise) {
  const out = [];
  for await (const x of pagePromise) out.push(x);
  return out;
}

export async function rejectsStatus(promise, status, re) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Anthropic.APIError, `expected an APIError, got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, status, err.message);
    if (re) assert.match(err.message, re);
    return true;
  });
}
