// The library version. Also the first source of the shared library libpowerret, whose API comes
// from the static core linked in whole.
#include "powerret/powerret.hpp"

namespace powerret {
const char* version() { return "0.1.0"; }
}  // namespace powerret
