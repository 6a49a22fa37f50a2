// The Vitest test tests/bundlers.test.mjs runs with jsdom (copied beside main.js
// in the app folder as mha.test.js): the same app, in Node with jsdom's window.
// @vitest-environment jsdom
import { expect, test } from 'vitest';
import './main.js';

test('mha-wasm under jsdom', async () => {
  expect(typeof window).toBe('object');
  const result = await window.mhaResult;
  console.log(`MHA_RESULT ${JSON.stringify(result)}`);
  expect(result.error).toBeUndefined();
}, 60000);
