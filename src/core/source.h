#ifndef OKRD_CORE_SOURCE_H_
#define OKRD_CORE_SOURCE_H_

// Where a logged event or rejection came from.

#include <string>

#include "okrd/v1/records.pb.h"

namespace okrd {

// Whether `position` names a Kafka partition. `okrctl log import` stores
// "import:FILE", which no Kafka topic name can be (they allow only
// [a-zA-Z0-9._-]).
inline bool FromKafka(const okrd::v1::SourcePosition& position) {
  return !position.topic().empty() &&
         position.topic().find(':') == std::string::npos;
}

}  // namespace okrd

#endif  // OKRD_CORE_SOURCE_H_
