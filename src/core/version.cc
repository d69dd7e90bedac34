#include "core/version.h"

namespace okrd {

const char* Version() { return OKRD_VERSION; }

}  // namespace okrd
