// forward (CPU): the chunked power retention of docs/DESIGN.md, in fp64, per (b, kv head):
//   num_i = scale^p [dec0_i phi(q_i)^T S_enter + sum_{j<=i in chunk} (q_i.k_j)^p decay(j,i) v_j]   (e)
//   den_i = the same with z_enter and 1 for v_j;   y_i = num_i / den_i (0 where den_i == 0) or num_i
//   S_next = decay_chunk S_enter + sum_j decay(j, L) phi(k_j) v_j^T        S (D, e), z (D)
// q [b,t,hq,d], k [b,t,h,d], v [b,t,h,e], log_g [b,t,h], S0/S_out [b,h,D,e], z0/z_out [b,h,D].
#include <cmath>
#include <vector>

#include "cpu/backend.hpp"
#include "cpu/common.hpp"

namespace powerret::cpu {

void forward(const detail::ForwardProblem& pb) {
  const SympowTable table(pb.d, pb.deg);
  const int64_t D = pb.D, d = pb.d, e = pb.e, group = pb.hq / pb.h;
  const double scale_p = std::pow(static_cast<double>(pb.scale), pb.deg);
  const double scale = pb.scale;

  parallel_for(pb.b * pb.h, pb.t * (group + 1) * D * e, [&](int64_t bh) {
    const int64_t bi = bh / pb.h, hk = bh % pb.h;
    std::vector<double> S(D * e, 0.0), z(D, 0.0);
    if (pb.s0) {
      for (int64_t i = 0; i < D * e; ++i) S[i] = pb.s0[bh * D * e + i];
      for (int64_t i = 0; i < D; ++i) z[i] = pb.z0[bh * D + i];
    }
    // Token-major offsets of (bi, token, head) in q/k/v/y/log_g.
    auto qk_at = [&](int64_t tok, int64_t head, int64_t heads, int64_t dim) {
      return ((bi * pb.t + tok) * heads + head) * dim;
    };
    std::vector<double> kc, vc, phi_k, x(d), phi_q(D), num(e);
    GateScan gates;
    for (int64_t t0 = 0; t0 < pb.t; t0 += pb.chunk) {
      const int64_t len = std::min<int64_t>(pb.chunk, pb.t - t0);
      const float* lg = pb.log_g ? pb.log_g + (bi * pb.t + t0) * pb.h + hk : nullptr;
      gates.run(lg, pb.h, len);
      kc.assign(len * d, 0.0);
      vc.assign(len * e, 0.0);
      phi_k.assign(len * D, 0.0);
      for (int64_t j = 0; j < len; ++j) {
        for (int64_t c = 0; c < d; ++c) kc[j * d + c] = load(pb.k, pb.dtype, qk_at(t0 + j, hk, pb.h, d) + c);
        for (int64_t c = 0; c < e; ++c) vc[j * e + c] = load(pb.v, pb.dtype, qk_at(t0 + j, hk, pb.h, e) + c);
        table.expand(&kc[j * d], &phi_k[j * D]);
      }
      // Outputs of every query head that reads this kv head.
      for (int64_t hq = hk * group; hq < (hk + 1) * group; ++hq) {
        for (int64_t i = 0; i < len; ++i) {
          for (int64_t c = 0; c < d; ++c) x[c] = load(pb.q, pb.dtype, qk_at(t0 + i, hq, pb.hq, d) + c);
          table.expand(x.data(), phi_q.data());
          const double dec0 = gates.decay_from_start(i);
          double den = 0;
          std::fill(num.begin(), num.end(), 0.0);
          for (int64_t r = 0; r < D; ++r) {
            const double w = phi_q[r];
            den += w * z[r];
            for (int64_t c = 0; c < e; ++c) num[c] += w * S[r * e + c];
          }
          den *= scale_p * dec0;
          for (int64_t c = 0; c < e; ++c) num[c] *= scale_p * dec0;
          for (int64_t j = 0; j <= i; ++j) {
            double dot = 0;
            for (int64_t c = 0; c < d; ++c) dot += x[c] * kc[j * d + c];
            const double w = std::pow(scale * dot, pb.deg) * gates.decay(j, i);
            den += w;
            for (int64_t c = 0; c < e; ++c) num[c] += w * vc[j * e + c];
          }
          const int64_t out = qk_at(t0 + i, hq, pb.hq, e);
          for (int64_t c = 0; c < e; ++c) {
            const double y = !pb.normalize ? num[c] : (den == 0.0 ? 0.0 : num[c] / den);
            store(pb.y, pb.dtype, out + c, y);
          }
        }
      }
      // State entering the next chunk.
      const int64_t last = len - 1;
      const double dec_chunk = gates.decay_from_start(last);
      for (int64_t r = 0; r < D; ++r) {
        z[r] *= dec_chunk;
        for (int64_t c = 0; c < e; ++c) S[r * e + c] *= dec_chunk;
      }
      for (int64_t j = 0; j < len; ++j) {
        const double dj = gates.decay(j, last);
        for (int64_t r = 0; r < D; ++r) {
          const double w = phi_k[j * D + r] * dj;
          z[r] += w;
          for (int64_t c = 0; c < e; ++c) S[r * e + c] += w * vc[j * e + c];
        }
      }
    }
    if (pb.s_out) {
      for (int64_t i = 0; i < D * e; ++i) pb.s_out[bh * D * e + i] = static_cast<float>(S[i]);
      for (int64_t i = 0; i < D; ++i) pb.z_out[bh * D + i] = static_cast<float>(z[i]);
    }
  });
}

}  // namespace powerret::cpu
