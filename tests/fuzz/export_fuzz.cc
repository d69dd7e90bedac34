// okrd's own exposition and HTTP code: label values escaped so that they
// read back as written, sample values that parse back to the same double,
// Accept-Encoding headers of any shape, gzip bodies that inflate back, and
// JSON API query strings and resource names of any shape answered with 200,
// 400 or 404 and a body that parses as the answer's schema.

#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "export/http_server.h"
#include "export/text_format.h"
#include "export/view.h"
#include "fuzz/check.h"
#include "google/protobuf/util/json_util.h"

namespace {

// Undoes AppendLabelValue's escaping of what sits between the quotes.
std::string Unescape(const std::string& quoted) {
  std::string out;
  for (size_t i = 0; i < quoted.size(); ++i) {
    if (quoted[i] != '\\') {
      FUZZ_CHECK(quoted[i] != '"' && quoted[i] != '\n');
      out.push_back(quoted[i]);
      continue;
    }
    FUZZ_CHECK(i + 1 < quoted.size());
    const char next = quoted[++i];
    FUZZ_CHECK(next == '\\' || next == '"' || next == 'n');
    out.push_back(next == 'n' ? '\n' : next);
  }
  return out;
}

std::string Gunzip(const std::string& gz) {
  z_stream z{};
  FUZZ_CHECK(inflateInit2(&z, 15 + 16) == Z_OK);
  std::string out;
  char buffer[16384];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buffer);
    z.avail_out = sizeof(buffer);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buffer, sizeof(buffer) - z.avail_out);
  }
  inflateEnd(&z);
  FUZZ_CHECK(rc == Z_STREAM_END);
  return out;
}

// A projection with one series, for the API's answers.
const okrd::projection::KpiProjection& Projection() {
  static const okrd::projection::KpiProjection* projection = [] {
    auto config = std::make_shared<okrd::config::Config>();
    okrd::config::KpiOptions kpi;
    kpi.id = "signups";
    kpi.aggregation = okrd::config::Aggregation::kSum;
    config->kpis.push_back(kpi);
    auto* p = new okrd::projection::KpiProjection(config);
    okrd::v1::StoredEvent record;
    record.set_sequence(1);
    record.set_ingest_time_us(1795634360000000);
    record.mutable_event()->set_kpi("signups");
    record.mutable_event()->set_subject("team a");
    record.mutable_event()->set_value(2);
    record.mutable_event()->mutable_event_time()->set_seconds(1795634300);
    p->Apply(record);
    return p;
  }();
  return *projection;
}

template <typename Answer>
void CheckAnswer(const okrd::exporter::ApiAnswer& answer) {
  if (answer.status == 200) {
    Answer parsed;
    FUZZ_CHECK(
        google::protobuf::util::JsonStringToMessage(answer.body, &parsed).ok());
    FUZZ_CHECK(parsed.sequence() == 1);
    return;
  }
  FUZZ_CHECK(answer.status == 400 || answer.status == 404);
  okrd::v1::ApiError error;
  FUZZ_CHECK(
      google::protobuf::util::JsonStringToMessage(answer.body, &error).ok());
  FUZZ_CHECK(!error.error().empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  okrd::exporter::AcceptsGzip(input);

  std::string escaped;
  okrd::exporter::AppendLabelValue(input, &escaped);
  FUZZ_CHECK(Unescape(escaped) == input);

  if (size >= sizeof(double)) {
    double value;
    std::memcpy(&value, data, sizeof(value));
    std::string text;
    okrd::exporter::AppendValue(value, &text);
    if (std::isnan(value)) {
      FUZZ_CHECK(text == "NaN");
    } else {
      FUZZ_CHECK(std::strtod(text.c_str(), nullptr) == value ||
                 (std::isinf(value) && text == (value > 0 ? "+Inf" : "-Inf")));
    }
  }
  if (size < 4096) {
    FUZZ_CHECK(Gunzip(okrd::exporter::Gzip(input)) == input);
    // As /metrics writes it: piece by piece, compressed bytes handed on in
    // pieces of their own.
    std::string zipped;
    okrd::exporter::GzipWriter writer([&zipped](absl::string_view piece) {
      zipped.append(piece.data(), piece.size());
      return true;
    });
    const size_t cut = size == 0 ? 0 : data[0] % size;
    FUZZ_CHECK(writer.Write(absl::string_view(input).substr(0, cut)));
    FUZZ_CHECK(writer.Write(absl::string_view(input).substr(cut)));
    FUZZ_CHECK(writer.Finish());
    FUZZ_CHECK(Gunzip(zipped) == input);
  }

  const okrd::exporter::DaemonState state;
  CheckAnswer<okrd::v1::KpisAnswer>(
      okrd::exporter::AnswerApi("kpis", input, Projection(), state));
  CheckAnswer<okrd::v1::PipsAnswer>(
      okrd::exporter::AnswerApi("pips", input, Projection(), state));
  const okrd::exporter::ApiAnswer named =
      okrd::exporter::AnswerApi(input, "", Projection(), state);
  FUZZ_CHECK(named.status == 200 || named.status == 404);
  return 0;
}
