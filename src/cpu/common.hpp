// CPU backend building blocks: element load/store for every dtype, the symmetric-power row table
// of SPEC §1, the gate scan of docs/DESIGN.md, and a parallel loop over independent (b, h) pairs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "api/problem.hpp"

namespace powerret::cpu {

// ---- elements ---------------------------------------------------------------------------------
// x.astype(np.float64) for one fp16 / bf16 / fp32 / fp64 element.
inline double half_to_double(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  double v;
  if (exp == 0) v = std::ldexp(static_cast<double>(man), -24);
  else if (exp == 31) v = man ? NAN : INFINITY;
  else v = std::ldexp(static_cast<double>(man | 0x400), exp - 25);
  return sign ? -v : v;
}

// np.float16(x): round to nearest even, overflow to inf, NaN kept.
inline uint16_t double_to_half(double x) {
  float f = static_cast<float>(x);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t absu = u & 0x7fffffffu;
  if (absu >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (absu > 0x7f800000u ? 0x200u : 0u));
  // Round through the magnitude in double: exact for the binade arithmetic below.
  const double a = std::fabs(static_cast<double>(f));
  if (a >= 65520.0) return static_cast<uint16_t>(sign | 0x7c00u);
  if (a < std::ldexp(1.0, -14)) {  // subnormal: multiples of 2^-24
    const double m = std::nearbyint(a * std::ldexp(1.0, 24));
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(m));
  }
  int e;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
  const double m = std::nearbyint(std::ldexp(a, 11 - e));  // 11 significant bits
  uint32_t exp = static_cast<uint32_t>(e - 1 + 15), man = static_cast<uint32_t>(m) - 0x400u;
  if (m >= 2048.0) exp += 1, man = 0;
  return static_cast<uint16_t>(sign | (exp << 10) | man);
}

inline double bf16_to_double(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// torch.tensor(x).to(torch.bfloat16): round to nearest even, NaN kept.
inline uint16_t double_to_bf16(double x) {
  const float f = static_cast<float>(x);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline double load(const void* base, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::kFloat16: return half_to_double(static_cast<const uint16_t*>(base)[i]);
    case DType::kBFloat16: return bf16_to_double(static_cast<const uint16_t*>(base)[i]);
    case DType::kFloat32: return static_cast<const float*>(base)[i];
    case DType::kFloat64: return static_cast<const double*>(base)[i];
    default: return NAN;
  }
}

inline void store(void* base, DType dtype, int64_t i, double x) {
  switch (dtype) {
    case DType::kFloat16: static_cast<uint16_t*>(base)[i] = double_to_half(x); break;
    case DType::kBFloat16: static_cast<uint16_t*>(base)[i] = double_to_bf16(x); break;
    case DType::kFloat32: static_cast<float*>(base)[i] = static_cast<float>(x); break;
    case DType::kFloat64: static_cast<double*>(base)[i] = x; break;
    default: break;
  }
}

// ---- symmetric power rows ---------------------------------------------------------------------
// Row r of phi_p: the sorted multi-index a_r (lexicographic order) and sqrt(p! / prod count!).
//   itertools.combinations_with_replacement(range(d), p) in order, with the weights.
struct SympowTable {
  int deg = 0;
  int64_t D = 0;
  std::vector<int32_t> index;  // [D, deg]
  std::vector<double> weight;  // [D]

  SympowTable(int64_t d, int p) : deg(p) {
    std::vector<int32_t> a(p, 0);
    double factorial_p = 1;
    for (int i = 2; i <= p; ++i) factorial_p *= i;
    while (true) {
      index.insert(index.end(), a.begin(), a.end());
      double denom = 1;
      for (int i = 0, run = 1; i < p; ++i, ++run) {  // product of factorials of run lengths
        if (i > 0 && a[i] != a[i - 1]) run = 1;
        denom *= run;
      }
      weight.push_back(std::sqrt(factorial_p / denom));
      // Next sorted multi-index: bump the last position that can grow, reset the tail to it.
      int pos = p - 1;
      while (pos >= 0 && a[pos] == d - 1) --pos;
      if (pos < 0) break;
      const int32_t v = a[pos] + 1;
      for (int i = pos; i < p; ++i) a[i] = v;
    }
    D = static_cast<int64_t>(weight.size());
  }

  // out[r] = phi_p(x)[r] for a length-d vector x.
  void expand(const double* x, double* out) const {
    for (int64_t r = 0; r < D; ++r) {
      double prod = weight[r];
      const int32_t* a = &index[r * deg];
      for (int m = 0; m < deg; ++m) prod *= x[a[m]];
      out[r] = prod;
    }
  }
};

// ---- gates ------------------------------------------------------------------------------------
// Chunk-local gate scan of docs/DESIGN.md: G[i] sums the non-reset log gates of positions <= i,
// R[i] is the last reset position <= i (-1 if none).
struct GateScan {
  std::vector<double> G;
  std::vector<int64_t> R;

  // log_g points at the chunk's first token for this (b, h), stride `stride` between tokens;
  // null means no gating.
  void run(const float* log_g, int64_t stride, int64_t len) {
    G.assign(len, 0.0);
    R.assign(len, -1);
    double g = 0;
    int64_t last = -1;
    for (int64_t i = 0; i < len; ++i) {
      if (log_g) {
        const float lg = log_g[i * stride];
        if (lg < detail::kResetLogGate) last = i;
        else g += lg;
      }
      G[i] = g;
      R[i] = last;
    }
  }
  // Decay from token j to token i of the chunk (j <= i).
  double decay(int64_t j, int64_t i) const { return R[i] <= j ? std::exp(G[i] - G[j]) : 0.0; }
  // Decay from the state entering the chunk to token i.
  double decay_from_start(int64_t i) const { return R[i] == -1 ? std::exp(G[i]) : 0.0; }
};

// ---- threads ----------------------------------------------------------------------------------
// for i in range(n): fn(i), split over the machine's cores; each index runs exactly once. Threads
// are started per call, so only when the whole loop is worth it: `work` is a rough count of
// multiply-adds per index, and below ~2^18 in all one thread runs everything (starting threads
// costs tens of microseconds, more than a small decode step).
template <class Fn>
void parallel_for(int64_t n, int64_t work, Fn fn) {
  const bool worth_it = n * work >= (int64_t{1} << 18);
  const int64_t workers = worth_it ? std::min<int64_t>(n, std::max(1u, std::thread::hardware_concurrency())) : 1;
  if (workers <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t w = 0; w < workers; ++w)
    pool.emplace_back([&, w] {
      for (int64_t i = w; i < n; i += workers) fn(i);
    });
  for (auto& th : pool) th.join();
}

}  // namespace powerret::cpu
