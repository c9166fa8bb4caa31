// Validation of SPEC §6 for every op, in one place: params -> resolved problem, or powerret::Error
// before anything is written.
#pragma once

#include "api/problem.hpp"

namespace powerret::detail {

SympowProblem validate(const SympowParams& params);
// check_workspace = false skips the workspace checks (used to size the workspace).
ForwardProblem validate(const ForwardParams& params, bool check_workspace);
DecodeProblem validate(const DecodeParams& params);

// Bytes of scratch memory a validated forward problem needs on its device.
std::size_t workspace_bytes(const ForwardProblem& problem);

}  // namespace powerret::detail
