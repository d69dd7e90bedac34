#ifndef OKRD_CORE_VERSION_H_
#define OKRD_CORE_VERSION_H_

namespace okrd {

// The project version, from CMake's project().
const char* Version();

}  // namespace okrd

#endif  // OKRD_CORE_VERSION_H_
