// Runs the plain-JavaScript layer off the page's main thread for the benchmark.
import { plainMha } from './plain-mha.js';

self.addEventListener('message', ({ data: { id, x, B, L, E, H, weights, reps } }) => {
  try {
    const times = [];
    let out;
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      out = plainMha(x, B, L, E, H, weights);
      times.push(performance.now() - t0);
    }
    self.postMessage({ id, times, output: out }, [out.buffer]);
  } catch (e) {
    self.postMessage({ id, error: `${e.name}: ${e.message}` });
  }
});
