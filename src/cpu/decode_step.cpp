// decode_step (CPU): one recurrence step per batch row, state updated in place, in fp64:
//   a = exp(log_g) (0 for a reset);  S = a S + phi(k) v^T  (D, e);  z = a z + phi(k)  (D)
//   y = scale^p phi(q)^T S / (scale^p phi(q)^T z)   (0 where that is 0), or the numerator only
// The new token's share of y is taken as (q.k)^p v, not through the fp32-rounded phi(k) v^T:
//   phi(q)^T S_new = a phi(q)^T S_old + (q.k)^p v      (same value, no cancellation in the sum
// over D rows, which can amplify fp32 rounding by (|q||k| / |q.k|)^p).
// q [b,hq,d], k [b,h,d], v [b,h,e], log_g [b,h], S [slots,h,D,e], z [slots,h,D], y [b,hq,e].
#include <cmath>
#include <vector>

#include "cpu/backend.hpp"
#include "cpu/common.hpp"

namespace powerret::cpu {

void decode_step(const detail::DecodeProblem& pb) {
  const SympowTable table(pb.d, pb.deg);
  const int64_t D = pb.D, d = pb.d, e = pb.e, group = pb.hq / pb.h;
  const double scale_p = std::pow(static_cast<double>(pb.scale), pb.deg);

  parallel_for(pb.b * pb.h, (group + 1) * D * e, [&](int64_t bh) {
    const int64_t bi = bh / pb.h, hk = bh % pb.h;
    const int64_t slot = pb.slots ? pb.slots[bi] : bi;
    if (slot < 0 || slot >= pb.num_slots) {  // skipped row: state untouched, y = 0
      for (int64_t hq = hk * group; hq < (hk + 1) * group; ++hq)
        for (int64_t c = 0; c < e; ++c) store(pb.y, pb.dtype, (bi * pb.hq + hq) * e + c, 0.0);
      return;
    }
    float* S = pb.s + (slot * pb.h + hk) * D * e;
    float* z = pb.z + (slot * pb.h + hk) * D;
    std::vector<double> kx(d), qx(d), phi_k(D), phi_q(D), v(e), num(e);
    for (int64_t c = 0; c < d; ++c) kx[c] = load(pb.k, pb.dtype, bh * d + c);
    for (int64_t c = 0; c < e; ++c) v[c] = load(pb.v, pb.dtype, bh * e + c);
    table.expand(kx.data(), phi_k.data());
    double a = 1.0;
    if (pb.log_g) {
      const float lg = pb.log_g[bh];
      a = lg < detail::kResetLogGate ? 0.0 : std::exp(static_cast<double>(lg));
    }
    for (int64_t hq = hk * group; hq < (hk + 1) * group; ++hq) {  // reads the old state
      for (int64_t c = 0; c < d; ++c) qx[c] = load(pb.q, pb.dtype, (bi * pb.hq + hq) * d + c);
      table.expand(qx.data(), phi_q.data());
      double den = 0, dot = 0;
      std::fill(num.begin(), num.end(), 0.0);
      for (int64_t r = 0; r < D; ++r) {
        den += phi_q[r] * z[r];
        for (int64_t c = 0; c < e; ++c) num[c] += phi_q[r] * S[r * e + c];
      }
      for (int64_t c = 0; c < d; ++c) dot += qx[c] * kx[c];
      const double w = std::pow(dot, pb.deg);
      den = scale_p * (a * den + w);
      for (int64_t c = 0; c < e; ++c) {
        const double n = scale_p * (a * num[c] + w * v[c]);
        store(pb.y, pb.dtype, (bi * pb.hq + hq) * e + c, !pb.normalize ? n : (den == 0.0 ? 0.0 : n / den));
      }
    }
    for (int64_t r = 0; r < D; ++r) {
      z[r] = static_cast<float>(a * z[r] + phi_k[r]);
      for (int64_t c = 0; c < e; ++c) S[r * e + c] = static_cast<float>(a * S[r * e + c] + phi_k[r] * v[c]);
    }
  });
}

}  // namespace powerret::cpu
