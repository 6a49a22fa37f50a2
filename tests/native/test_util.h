#pragma once
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace mha_test {

inline std::vector<float> uniform(size_t n, float lo, float hi, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// max |a - b| relative to max(1, max |b|).
inline double rel_err(const float* a, const float* b, size_t n) {
  double e = 0, m = 1;
  for (size_t i = 0; i < n; ++i) {
    e = std::max(e, std::abs(static_cast<double>(a[i]) - b[i]));
    m = std::max(m, std::abs(static_cast<double>(b[i])));
  }
  return e / m;
}

// rel_err for results that may hold NaN or Infinity: each non-finite entry of b must be
// matched exactly by a (NaN by NaN, +inf by +inf), finite ones by finite ones; INFINITY
// when they differ, else rel_err over the finite entries.
inline double rel_err_nonfinite(const float* a, const float* b, size_t n) {
  double e = 0, m = 1;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) {
      if (!(std::isnan(a[i]) && std::isnan(b[i])) && a[i] != b[i]) return INFINITY;
      continue;
    }
    e = std::max(e, std::abs(static_cast<double>(a[i]) - b[i]));
    m = std::max(m, std::abs(static_cast<double>(b[i])));
  }
  return e / m;
}

inline bool all_finite(const float* a, size_t n) {
  return std::all_of(a, a + n, [](float x) { return std::isfinite(x); });
}

}  // namespace mha_test
