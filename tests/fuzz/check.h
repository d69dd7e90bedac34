#ifndef OKRD_TESTS_FUZZ_CHECK_H_
#define OKRD_TESTS_FUZZ_CHECK_H_

// CHECK for fuzz targets: aborts, naming the invariant, when it does not
// hold, so that libFuzzer records the input and replay says what broke.

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(ok)                                                      \
  do {                                                                      \
    if (!(ok)) {                                                            \
      std::fprintf(stderr, "%s:%d: %s does not hold\n", __FILE__, __LINE__, \
                   #ok);                                                    \
      std::abort();                                                         \
    }                                                                       \
  } while (false)

#endif  // OKRD_TESTS_FUZZ_CHECK_H_
