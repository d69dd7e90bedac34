#include "core/log.h"

#include <memory>
#include <sstream>
#include <string>

#include "google/protobuf/stubs/logging.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ostream_sink.h"

namespace okrd {
namespace {

// Points spdlog's default logger at a string for the test's life.
class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitLogging("debug").ok());
    saved_ = spdlog::default_logger();
    auto logger = std::make_shared<spdlog::logger>(
        "test", std::make_shared<spdlog::sinks::ostream_sink_st>(out_));
    logger->set_pattern("%l %v");
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
  }
  void TearDown() override { spdlog::set_default_logger(saved_); }

  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> saved_;
};

TEST_F(LogTest, ProtobufLinesGoToOkrdsLog) {
  GOOGLE_LOG(ERROR) << "something\nbroke";
  GOOGLE_LOG(WARNING) << "careful";
  const std::string text = out_.str();
  EXPECT_NE(text.find("error protobuf: something broke ("), std::string::npos)
      << text;
  EXPECT_NE(text.find("warning protobuf: careful ("), std::string::npos)
      << text;
}

TEST_F(LogTest, ComplaintsAreCollectedNotLogged) {
  {
    ProtobufComplaints outer;
    {
      ProtobufComplaints inner;
      GOOGLE_LOG(ERROR) << "String field 'x' is bad. Use bytes. ";
      GOOGLE_LOG(ERROR) << "second";
      EXPECT_EQ(inner.first(), "String field 'x' is bad");
    }
    EXPECT_EQ(outer.first(), "");
    GOOGLE_LOG(ERROR) << "for the outer scope.";
    EXPECT_EQ(outer.first(), "for the outer scope");
  }
  EXPECT_EQ(out_.str(), "");
  GOOGLE_LOG(ERROR) << "after";
  EXPECT_NE(out_.str().find("error protobuf: after"), std::string::npos);
}

}  // namespace
}  // namespace okrd
