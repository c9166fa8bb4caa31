// sym_row: the rows of the symmetric power expansion phi_p : R^d -> R^D, D = C(d+p-1, p) (SPEC §1).
//   Row r is the r-th sorted multi-index a = (a_0 <= a_1 <= ... <= a_{p-1}), 0 <= a_m < d, in
//   lexicographic order; p = 2: (0,0),(0,1),...,(0,d-1),(1,1),(1,2),...,(d-1,d-1).
//   phi_p(x)[r] = sqrt(p! / prod_v count_v(a)!) * x[a_0] * x[a_1] * ... * x[a_{p-1}]
//   == [sqrt(multinomial(a)) * prod(x[list(a)]) for a in itertools.combinations_with_replacement(range(d), p)][r]
// A SymRow holds one multi-index in registers. unrank(r) jumps to row r in O(d + p) steps; advance()
// steps to row r + 1 in O(p), so a warp that walks a contiguous range of rows unranks once.
// Every index a SymRow ever holds is in [0, d), also past the last row and for an r out of range.
#pragma once

#include <cstdint>

#include "cuda/common/dtype.cuh"
#include "cuda/common/limits.hpp"

namespace powerret::cuda {

// math.comb(n + k - 1, k): the sorted k-tuples over n values, for 0 <= k <= 3.
__device__ __forceinline__ int64_t multisets(int64_t n, int k) {
  switch (k) {
    case 0: return 1;
    case 1: return n;
    case 2: return n * (n + 1) / 2;
    default: return n * (n + 1) * (n + 2) / 6;
  }
}

struct SymRow {
  int a[kMaxDeg];  // a[0] <= ... <= a[deg - 1]; entries from deg on are unused (0)

  // a = the r-th sorted multi-index of length deg over [0, d)   (0 <= r < C(d + deg - 1, deg)).
  // Position m takes the smallest i >= a[m-1] such that r falls among the rows with a[m] == i,
  // of which there are multisets(d - i, deg - m - 1); the i's only grow, so <= d + deg steps in all.
  __device__ __forceinline__ void unrank(int64_t r, int d, int deg) {
    int i = 0;
#pragma unroll
    for (int m = 0; m < kMaxDeg; ++m) {
      if (m < deg) {
        for (int64_t count = multisets(d - i, deg - m - 1); r >= count && i < d - 1;
             count = multisets(d - i, deg - m - 1)) {
          r -= count;
          ++i;
        }
      }
      a[m] = m < deg ? i : 0;
    }
  }

  // a = the next sorted multi-index in lexicographic order: the last position that can still grow
  // grows by one and every later position copies it. Unchanged after the last row (d-1, ..., d-1).
  __device__ __forceinline__ void advance(int d, int deg) {
    int pivot = -1;
#pragma unroll
    for (int m = 0; m < kMaxDeg; ++m)
      if (m < deg && a[m] < d - 1) pivot = m;
    if (pivot < 0) return;
#pragma unroll
    for (int m = 0; m < kMaxDeg; ++m)
      if (m == pivot) ++a[m];
#pragma unroll
    for (int m = 1; m < kMaxDeg; ++m)
      if (m > pivot && m < deg) a[m] = a[m - 1];
  }

  // sqrt(deg! / prod_v count_v!)  == math.sqrt(multinomial(a)): 1 on the diagonal (i, i), sqrt(2) off it.
  __device__ __forceinline__ float weight(int deg) const {
    int denom = 1;  // prod_v count_v!, built up run by run: a run of length n multiplies in 2 * 3 * ... * n
    int run = 1;
#pragma unroll
    for (int m = 1; m < kMaxDeg; ++m) {
      if (m < deg) {
        run = a[m] == a[m - 1] ? run + 1 : 1;
        denom *= run;
      }
    }
    const int factorial = deg == 1 ? 1 : deg == 2 ? 2 : deg == 3 ? 6 : 24;
    return sqrtf(static_cast<float>(factorial / denom));  // the quotient is an integer
  }

  // x[a_0] * ... * x[a_{deg-1}] in fp32  == np.prod(x[a[:deg]])   (x: one length-d vector)
  template <typename T>
  __device__ __forceinline__ float product(const T* x, int deg) const {
    float prod = to_float(x[a[0]]);
#pragma unroll
    for (int m = 1; m < kMaxDeg; ++m)
      if (m < deg) prod *= to_float(x[a[m]]);
    return prod;
  }
};

}  // namespace powerret::cuda
