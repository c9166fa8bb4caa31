// sympow (CPU): out[r, :] = phi_p(x[r, :])   x [rows, d] -> out [rows, D], fp64 math, x's dtype out.
#include <vector>

#include "cpu/backend.hpp"
#include "cpu/common.hpp"

namespace powerret::cpu {

void sympow(const detail::SympowProblem& pb) {
  const SympowTable table(pb.d, pb.deg);
  parallel_for(pb.rows, pb.D * pb.deg, [&](int64_t row) {
    std::vector<double> x(pb.d), phi(pb.D);
    for (int64_t i = 0; i < pb.d; ++i) x[i] = load(pb.x, pb.dtype, row * pb.d + i);
    table.expand(x.data(), phi.data());
    for (int64_t r = 0; r < pb.D; ++r) store(pb.out, pb.dtype, row * pb.D + r, phi[r]);
  });
}

}  // namespace powerret::cpu
