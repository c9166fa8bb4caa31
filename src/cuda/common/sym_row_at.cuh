// sym_row_at: the r-th row's multi-index of phi_p (SPEC §1 order, cuda/common/sym_row.cuh) in O(1)
// for p <= 2, for kernels that jump between rows instead of walking them with SymRow::advance().
//   p = 1: a = (r)
//   p = 2: a = (i, i + r - off(i)),  off(i) = i d - i (i - 1) / 2 = rows whose first index is < i,
//          i = the largest with off(i) <= r = floor(((2d + 1) - sqrt((2d + 1)^2 - 8 r)) / 2)
//          (fp32 root, then one integer correction each way: exact for d <= 128, every r < D)
//   p = 3, 4: SymRow::unrank (O(d + p) steps)
//   == list(itertools.combinations_with_replacement(range(d), p))[r]
// sym_row_weight(row, p) == row.weight(p) == sqrt(multinomial(a)), from a table of the seven possible
// values (correctly rounded fp32 constants) instead of sqrtf, whose slow path costs registers.
#pragma once

#include "cuda/common/sym_row.cuh"

namespace powerret::cuda {

__device__ __forceinline__ SymRow sym_row_at(int r, int d, int deg) {
  SymRow row;
#pragma unroll
  for (int m = 0; m < kMaxDeg; ++m) row.a[m] = 0;
  if (deg == 1) {
    row.a[0] = r;
  } else if (deg == 2) {
    const auto off = [d](int x) { return x * d - x * (x - 1) / 2; };
    const float b = 2.f * static_cast<float>(d) + 1.f;
    int i = static_cast<int>((b - sqrtf(fmaxf(b * b - 8.f * static_cast<float>(r), 0.f))) * 0.5f);
    i = min(max(i, 0), d - 1);
    if (i + 1 < d && off(i + 1) <= r) ++i;
    if (off(i) > r) --i;
    row.a[0] = i;
    row.a[1] = i + (r - off(i));
  } else {
    row.unrank(r, d, deg);
  }
  return row;
}

__device__ __forceinline__ float sym_row_weight(const SymRow& row, int deg) {
  int denom = 1;  // prod_v count_v!, run by run (as SymRow::weight)
  int run = 1;
#pragma unroll
  for (int m = 1; m < kMaxDeg; ++m) {
    if (m < deg) {
      run = row.a[m] == row.a[m - 1] ? run + 1 : 1;
      denom *= run;
    }
  }
  const int factorial = deg == 1 ? 1 : deg == 2 ? 2 : deg == 3 ? 6 : 24;
  switch (factorial / denom) {  // p! / prod count! for p <= 4: 1, 2, 3, 4, 6, 12 or 24
    case 1: return 1.f;
    case 2: return 1.4142135623730951f;
    case 3: return 1.7320508075688772f;
    case 4: return 2.f;
    case 6: return 2.449489742783178f;
    case 12: return 3.4641016151377544f;
    default: return 4.898979485566356f;
  }
}

}  // namespace powerret::cuda
