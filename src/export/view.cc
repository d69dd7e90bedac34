#include "export/view.h"

#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "civetweb.h"
#include "core/time_util.h"
#include "core/utf8.h"
#include "google/protobuf/util/json_util.h"
#include "projection/okr.h"
#include "projection/pip.h"

namespace okrd::exporter {
namespace {

std::string TimeOrEmpty(absl::Time t) {
  return t == absl::InfinitePast() ? std::string() : FormatUtc(t);
}

std::string TimeOrEmpty(const google::protobuf::Timestamp& t) {
  return t.seconds() == 0 && t.nanos() == 0 ? std::string()
                                            : FormatUtc(FromProto(t));
}

// The KPI series, only those of `kpi` and of the subject labelled `subject`
// when set: a narrow answer costs no view of the rest.
void AddKpis(const projection::KpiProjection& projection,
             const projection::Ownership::Mask& mask, const std::string* kpi,
             const std::string* subject,
             google::protobuf::RepeatedPtrField<okrd::v1::KpiSeriesView>* out) {
  projection.ForEachSeries([&](const projection::KpiSeries& s) {
    if (!mask.Exports(s.partition)) return;
    if (kpi != nullptr && s.kpi->id != *kpi) return;
    std::string label = SubjectLabel(projection.config(), *s.subject);
    if (subject != nullptr && label != *subject) return;
    okrd::v1::KpiSeriesView* item = out->Add();
    item->set_kpi(s.kpi->id);
    item->set_subject(std::move(label));
    item->set_period(s.period_label);
    item->set_period_start(FormatUtc(s.period.start));
    item->set_value(s.value);
  });
}

// As /metrics: a key result another instance exports is left out, and so is
// the progress of every objective above it (here it would be partial).
void AddOkrs(
    const projection::KpiProjection& projection,
    const projection::Ownership::Mask& mask,
    google::protobuf::RepeatedPtrField<okrd::v1::KeyResultView>* key_results,
    google::protobuf::RepeatedPtrField<okrd::v1::ObjectiveView>* objectives) {
  const projection::OkrState& okrs = projection.okrs();
  for (const projection::KeyResultState& kr : okrs.key_results) {
    if (key_results == nullptr) break;
    if (!mask.ExportsPair(projection, kr.key_result->kpi,
                          kr.key_result->subject)) {
      continue;
    }
    okrd::v1::KeyResultView* item = key_results->Add();
    item->set_objective(kr.objective->id);
    item->set_key_result(kr.key_result->id);
    if (kr.value) item->set_value(*kr.value);
    item->set_progress(kr.progress);
    item->set_expected_progress(kr.expected);
    item->set_status(std::string(projection::KrStatusName(kr.status)));
  }
  if (objectives == nullptr) return;
  const std::set<const config::ObjectiveOptions*> partial =
      PartialObjectives(okrs, projection, mask);
  for (const projection::ObjectiveState& o : okrs.objectives) {
    if (partial.contains(o.objective)) continue;
    okrd::v1::ObjectiveView* item = objectives->Add();
    item->set_objective(o.objective->id);
    item->set_progress(o.progress);
  }
}

// The PIP states, only those in `state` when set, and the transitions.
void AddPips(
    const projection::KpiProjection& projection,
    const projection::Ownership::Mask& mask, const std::string* state,
    google::protobuf::RepeatedPtrField<okrd::v1::PipView>* pips,
    google::protobuf::RepeatedPtrField<okrd::v1::PipTransitionView>* fired) {
  const config::Config& config = projection.config();
  projection.ForEachPipState([&](const projection::PipSubjectState& p) {
    if (!mask.ExportsPair(projection, p.policy->kpi, p.subject)) return;
    if (state != nullptr && projection::PipStateName(p.state) != *state) {
      return;
    }
    okrd::v1::PipView* item = pips->Add();
    item->set_policy(p.policy->id);
    item->set_subject(SubjectLabel(config, p.subject));
    item->set_state(std::string(projection::PipStateName(p.state)));
    item->set_breach_streak_periods(p.streak);
    item->set_insufficient_periods(p.insufficient_periods);
    if (p.triggered_at != absl::InfinitePast()) {
      item->set_triggered_at(TimeOrEmpty(p.triggered_at));
      item->set_deadline(TimeOrEmpty(p.deadline));
      item->set_milestones_missed(p.milestones_missed);
      projection::DescribePlan(*p.policy, p.triggered_at, p.milestones,
                               item->mutable_actions(),
                               item->mutable_milestones());
    }
    if (projection::HasOpenCheckins(p)) {
      if (p.next_checkin != absl::InfiniteFuture()) {
        item->set_next_checkin(TimeOrEmpty(p.next_checkin));
      }
      item->set_checkins_overdue(p.checkins_passed);
    }
  });
  // Subjects in fired transitions are already pseudonymized where
  // configured; shown where okr_pip_transitions_total counts them.
  for (const projection::FiredTransition& fired_transition :
       projection.pip_transitions()) {
    if (!mask.Exports(TransitionPartition(projection, fired_transition))) {
      continue;
    }
    const okrd::v1::PipTransition t =
        projection.PipTransitionRecord(fired_transition);
    okrd::v1::PipTransitionView* item = fired->Add();
    item->set_id(t.id());
    item->set_policy(t.policy());
    item->set_subject(t.subject());
    item->set_from(t.from_state());
    item->set_to(t.to_state());
    item->set_at(TimeOrEmpty(t.at()));
    item->set_plan_deadline(TimeOrEmpty(t.plan_deadline()));
    *item->mutable_actions() = t.actions();
    *item->mutable_milestones() = t.milestones();
    item->set_next_checkin(TimeOrEmpty(t.next_checkin()));
  }
}

ApiAnswer Error(int status, absl::string_view message) {
  okrd::v1::ApiError error;
  error.set_error(ValidUtf8(message));
  return {.status = status, .body = ViewJson(error)};
}

// The parameters of `query` (application/x-www-form-urlencoded), each
// allowed at most once, or the reason they are refused.
std::optional<std::string> ParseQuery(absl::string_view query,
                                      const std::set<std::string>& allowed,
                                      std::map<std::string, std::string>* out) {
  for (absl::string_view part : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    const std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    std::string decoded[2];
    const absl::string_view raw[2] = {kv.first, kv.second};
    for (int i = 0; i < 2; ++i) {
      // Decoding never lengthens; one more byte for civetweb's NUL.
      decoded[i].resize(raw[i].size() + 1);
      const int n = mg_url_decode(
          raw[i].data(), static_cast<int>(raw[i].size()), decoded[i].data(),
          static_cast<int>(decoded[i].size()), 1);
      if (n < 0) return "a query parameter does not decode";
      decoded[i].resize(static_cast<size_t>(n));
      if (ValidUtf8(decoded[i]) != decoded[i]) {
        return "a query parameter is not UTF-8";
      }
    }
    if (!allowed.contains(decoded[0])) {
      return absl::StrCat("unknown parameter \"", decoded[0], "\"");
    }
    if (!out->emplace(decoded[0], decoded[1]).second) {
      return absl::StrCat("parameter \"", decoded[0], "\" given twice");
    }
  }
  return std::nullopt;
}

// The answer's sequence and clock: the projection's.
template <typename Answer>
void SetHead(const projection::KpiProjection& projection, Answer* answer) {
  answer->set_sequence(projection.sequence());
  answer->set_clock(TimeOrEmpty(projection.clock()));
}

}  // namespace

okrd::v1::ProjectionView BuildView(const projection::KpiProjection& projection,
                                   const projection::Ownership::Mask& mask) {
  okrd::v1::ProjectionView view;
  SetHead(projection, &view);
  AddKpis(projection, mask, nullptr, nullptr, view.mutable_kpis());
  AddOkrs(projection, mask, view.mutable_key_results(),
          view.mutable_objectives());
  AddPips(projection, mask, nullptr, view.mutable_pips(),
          view.mutable_pip_transitions());
  return view;
}

std::string ViewJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  // Every string set here is UTF-8, so printing cannot fail.
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

ApiAnswer AnswerApi(absl::string_view resource, absl::string_view query,
                    const projection::KpiProjection& projection,
                    const DaemonState& state) {
  static const std::map<std::string, std::set<std::string>> kParameters = {
      {"objectives", {}},
      {"key_results", {}},
      {"kpis", {"kpi", "subject"}},
      {"pips", {"state"}}};
  const auto known = kParameters.find(std::string(resource));
  if (known == kParameters.end()) {
    return Error(404,
                 absl::StrCat("no such resource: /api/v1/", ValidUtf8(resource),
                              " (objectives, key_results, kpis, pips)"));
  }
  std::map<std::string, std::string> params;
  if (std::optional<std::string> bad =
          ParseQuery(query, known->second, &params)) {
    return Error(400, *bad);
  }
  if (auto it = params.find("state"); it != params.end()) {
    bool valid = false;
    std::vector<absl::string_view> names;
    for (projection::PipState s : projection::kAllPipStates) {
      names.push_back(projection::PipStateName(s));
      valid = valid || names.back() == it->second;
    }
    if (!valid) {
      return Error(
          400, absl::StrCat("state must be one of ", absl::StrJoin(names, ", "),
                            "; got \"", it->second, "\""));
    }
  }
  auto param = [&](const char* name) -> const std::string* {
    auto it = params.find(name);
    return it == params.end() ? nullptr : &it->second;
  };
  // Built under the caller's lock: only what the answer holds. A standby
  // instance (no partition owned) shows nothing, as on /metrics.
  const bool standby = state.ownership.standby();
  const projection::Ownership::Mask mask =
      state.ownership.MaskFor(projection.partitions());
  if (resource == "objectives") {
    okrd::v1::ObjectivesAnswer answer;
    SetHead(projection, &answer);
    if (!standby) {
      AddOkrs(projection, mask, nullptr, answer.mutable_objectives());
    }
    return {.body = ViewJson(answer)};
  }
  if (resource == "key_results") {
    okrd::v1::KeyResultsAnswer answer;
    SetHead(projection, &answer);
    if (!standby) {
      AddOkrs(projection, mask, answer.mutable_key_results(), nullptr);
    }
    return {.body = ViewJson(answer)};
  }
  if (resource == "kpis") {
    okrd::v1::KpisAnswer answer;
    SetHead(projection, &answer);
    if (!standby) {
      AddKpis(projection, mask, param("kpi"), param("subject"),
              answer.mutable_kpis());
    }
    return {.body = ViewJson(answer)};
  }
  okrd::v1::PipsAnswer answer;
  SetHead(projection, &answer);
  if (!standby) {
    AddPips(projection, mask, param("state"), answer.mutable_pips(),
            answer.mutable_pip_transitions());
  }
  return {.body = ViewJson(answer)};
}

}  // namespace okrd::exporter
