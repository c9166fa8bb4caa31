// metrics: the one FLOP / byte convention every powerret benchmark number is reported in.
// bench/metrics.py holds the same formulas in Python (compare.py uses it); the test
// tests/test_bench_metrics.py runs this binary and checks that both agree to the unit.
//
// Symbols as in SPEC.md: b batch, t tokens, hq query heads, h kv heads, d = dim(q, k), e = dim(v),
// p degree, D = C(d + p - 1, p) state rows, c the chunk size, es the bytes of one q/k/v/y element.
//
// FLOPs: a multiply-add counts 2 (the tensor-core convention). The work a chunked algorithm must do:
//   forward, per token    h  * (2*D*e + 2*D)          state in:  phi(k)^T v and the key sum z (per kv head)
//                       + hq * (2*D*e + 2*D)          state out: phi(q)^T S and phi(q)^T z (per query head)
//                       + hq * min(c, t) * (d + e)    intra-chunk, causal half: q.k scores, then P.v
//   decode, per row       h  * (2*D*e + 2*D) + hq * (2*D*e + 2*D)        (one token, no intra-chunk part)
//   sympow, per row       D * p                       (p - 1 products and the weight, per state row)
// Building phi from a q/k tile, the gates and the final division are not counted: together they
// are about 1/e of the matrix work that consumes them (PERF.md).
//
// Bytes: the compulsory traffic, each tensor the op reads read once and each it writes written once;
// scratch (the forward's workspace of per-chunk states) is the implementation's choice and is NOT
// counted, so GB/s is an effective rate that can be compared across implementations:
//   forward   es*(b*t*hq*d + b*t*h*d + b*t*h*e + b*t*hq*e) + 4*b*t*h (log_g, when gated)
//             + 4*b*h*(D*e + D) for the initial state read and again for the final state written
//             (only when the run passes / requests them: --state)
//   decode    es*(b*hq*d + b*h*d + b*h*e + b*hq*e) + 4*b*h (log_g) + 4*b (slots, when used)
//             + 2 * 4*b*h*(D*e + D)  (the b rows of S and z read and written back)
//   sympow    es * rows * (d + D)
#pragma once

#include <algorithm>
#include <cstdint>

namespace powerret_bench {

struct Shape {
  int64_t b = 1, t = 1, hq = 1, h = 1, d = 1, e = 1;
  int deg = 2;
  int64_t D = 1;          // state_dim(d, deg)
  int64_t chunk = 1;      // the chunk size the forward used
  int64_t elem_bytes = 2; // es: 2 for fp16/bf16, 4 for fp32
  bool gated = false;
  bool with_state = false;  // forward: initial state read and final state written
  bool slots = false;       // decode: an int32 slot per row
};

struct Cost {
  int64_t flops = 0;
  int64_t bytes = 0;
};

// 2*D*e + 2*D: one pass of phi(x) against S (D x e) and z (D), per head and token.
inline int64_t state_pass_flops(const Shape& s) { return 2 * s.D * s.e + 2 * s.D; }

// fp32 S (D x e) and z (D) of one (row, kv head).
inline int64_t state_bytes(const Shape& s) { return 4 * (s.D * s.e + s.D); }

inline Cost forward_cost(const Shape& s) {
  const int64_t tokens = s.b * s.t;
  const int64_t c_eff = std::min(s.chunk, s.t);
  Cost cost;
  cost.flops = tokens * (s.h * state_pass_flops(s) + s.hq * state_pass_flops(s) +
                         s.hq * c_eff * (s.d + s.e));
  cost.bytes = s.elem_bytes * tokens * (s.hq * s.d + s.h * s.d + s.h * s.e + s.hq * s.e);
  if (s.gated) cost.bytes += 4 * tokens * s.h;
  if (s.with_state) cost.bytes += 2 * s.b * s.h * state_bytes(s);
  return cost;
}

inline Cost decode_cost(const Shape& s) {
  Cost cost;
  cost.flops = s.b * (s.h * state_pass_flops(s) + s.hq * state_pass_flops(s));
  cost.bytes = s.elem_bytes * s.b * (s.hq * s.d + s.h * s.d + s.h * s.e + s.hq * s.e) +
               2 * s.b * s.h * state_bytes(s);
  if (s.gated) cost.bytes += 4 * s.b * s.h;
  if (s.slots) cost.bytes += 4 * s.b;
  return cost;
}

// sympow over x [b, t, h, d] -> [b, t, h, D].
inline Cost sympow_cost(const Shape& s) {
  const int64_t rows = s.b * s.t * s.h;
  Cost cost;
  cost.flops = rows * s.D * s.deg;
  cost.bytes = s.elem_bytes * rows * (s.d + s.D);
  return cost;
}

}  // namespace powerret_bench
