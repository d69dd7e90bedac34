#include "export/status_page.h"

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/time_util.h"
#include "projection/okr.h"
#include "projection/pip.h"

namespace okrd::exporter {
namespace {

constexpr char kStyle[] = R"css(
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#f7f8fa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px}
.meta{color:#5b6474;margin:0}
ul.tree,ul.tree ul{list-style:none;margin:0;padding-left:22px}ul.tree{padding-left:0}
li.objective{margin:8px 0;padding:8px 10px;background:#fff;border:1px solid #dde1e8;border-radius:6px}
.row{display:flex;align-items:center;gap:10px;flex-wrap:wrap}
.title{font-weight:600;min-width:260px}.owner{color:#5b6474}
.bar{position:relative;width:220px;height:12px;background:#e6e9ef;border-radius:6px;overflow:hidden}
.fill{height:100%}.expected{position:absolute;top:-2px;width:2px;height:16px;background:#1d2330}
.s-on_track,.s-achieved{background:#2f9e44}.s-at_risk{background:#f08c00}
.s-off_track,.s-missed{background:#e03131}.s-too_early{background:#74c0fc}
.s-no_data,.s-stale{background:#adb5bd}
table{border-collapse:collapse;margin-top:6px}td,th{padding:3px 8px;text-align:left}
th{color:#5b6474;font-weight:500}
.status{color:#fff;border-radius:4px;font-size:12px;padding:1px 6px}
.num{text-align:right;font-variant-numeric:tabular-nums}
tr.plan ul{margin:0 0 6px;padding-left:18px}
.m-pending{background:#adb5bd}.m-met{background:#2f9e44}.m-missed{background:#e03131}
)css";

void AppendEscaped(absl::string_view text, std::string* out) {
  for (const char c : text) {
    switch (c) {
      case '&':
        out->append("&amp;");
        break;
      case '<':
        out->append("&lt;");
        break;
      case '>':
        out->append("&gt;");
        break;
      case '"':
        out->append("&quot;");
        break;
      case '\'':
        out->append("&#39;");
        break;
      default:
        out->push_back(c);
    }
  }
}

std::string Escaped(absl::string_view text) {
  std::string out;
  AppendEscaped(text, &out);
  return out;
}

std::string Number(double v) { return absl::StrFormat("%.6g", v); }

std::string Percent(double ratio) {
  return absl::StrFormat("%.0f%%", 100 * ratio);
}

// A progress bar against the expected progress, coloured by `status`.
std::string Bar(double progress, double expected, absl::string_view status) {
  const double fill = std::clamp(progress, 0.0, 1.0);
  const double mark = std::clamp(expected, 0.0, 1.0);
  return absl::StrFormat(
      "<div class=\"bar\" title=\"%s against %s expected\"><div class=\"fill "
      "s-%s\" style=\"width:%.1f%%\"></div><div class=\"expected\" "
      "style=\"left:%.1f%%\"></div></div>",
      Percent(progress), Percent(expected), status, 100 * fill, 100 * mark);
}

// An objective's pacing, by the thresholds key results use.
absl::string_view ObjectiveStatus(double progress, double elapsed) {
  if (progress >= 1) return "achieved";
  if (elapsed < projection::kTooEarlyElapsed) return "too_early";
  const double gap = elapsed - progress;
  if (gap <= projection::kOnTrackGap + projection::kBoundaryTolerance) {
    return "on_track";
  }
  if (gap <= projection::kAtRiskGap + projection::kBoundaryTolerance) {
    return "at_risk";
  }
  return "off_track";
}

class Page {
 public:
  Page(const projection::KpiProjection& projection, const DaemonState& state)
      : projection_(projection),
        config_(projection.config()),
        state_(state),
        okrs_(projection.okrs()),
        mask_(state.ownership.MaskFor(projection.partitions())) {
    for (const projection::ObjectiveState& o : okrs_.objectives) {
      children_[o.objective->parent].push_back(&o);
    }
    for (const projection::KeyResultState& kr : okrs_.key_results) {
      key_results_[kr.objective->id].push_back(&kr);
      // Another instance owns it (README, "Scale-out"): what this one holds
      // of it may be stale, and the objectives above it are partial here.
      if (!Owned(kr)) {
        for (const auto& c : kr.contributions) partial_.insert(c.objective);
      }
    }
  }

  std::string Render() {
    absl::StrAppend(&out_,
                    "<!doctype html>\n<html lang=\"en\"><head><meta "
                    "charset=\"utf-8\"><title>okrd status</title><style>",
                    kStyle, "</style></head><body>\n<h1>okrd</h1>");
    const absl::Time clock = projection_.clock();
    absl::StrAppend(
        &out_, "<p class=\"meta\">Log clock <span id=\"clock\">",
        clock == absl::InfinitePast() ? "not started" : FormatUtc(clock),
        "</span>, projection at sequence <span id=\"sequence\">",
        projection_.sequence(), "</span></p>\n");
    Objectives();
    Pips();
    Health();
    out_.append("</body></html>\n");
    return std::move(out_);
  }

 private:
  void Objectives() {
    out_.append("<section id=\"objectives\"><h2>Objectives</h2>\n");
    if (okrs_.objectives.empty()) {
      out_.append("<p>No objectives configured.</p>");
    } else {
      ObjectiveTree("");
    }
    out_.append("</section>\n");
  }

  void ObjectiveTree(const std::string& parent) {
    auto found = children_.find(parent);
    if (found == children_.end()) return;
    out_.append("<ul class=\"tree\">\n");
    for (const projection::ObjectiveState* o : found->second) {
      const config::ObjectiveOptions& opts = *o->objective;
      const double elapsed =
          projection::ElapsedRatio(opts.start, opts.end, projection_.clock());
      if (partial_.contains(&opts)) {
        absl::StrAppend(&out_, "<li class=\"objective\" data-objective=\"",
                        Escaped(opts.id),
                        "\"><div class=\"row\"><span class=\"title\">",
                        Escaped(opts.title.empty() ? opts.id : opts.title),
                        "</span><span class=\"owner\">key results on other "
                        "instances: see objective:okr_objective_progress_"
                        "ratio:sum</span></div>\n");
        KeyResults(opts.id);
        ObjectiveTree(opts.id);
        out_.append("</li>\n");
        continue;
      }
      const absl::string_view status = ObjectiveStatus(o->progress, elapsed);
      absl::StrAppend(
          &out_, "<li class=\"objective\" data-objective=\"", Escaped(opts.id),
          "\"><div class=\"row\"><span class=\"title\">",
          Escaped(opts.title.empty() ? opts.id : opts.title), "</span>",
          Bar(o->progress, elapsed, status),
          "<span class=\"progress\" data-progress=\"", Number(o->progress),
          "\">", Percent(o->progress), "</span><span class=\"owner\">expected ",
          Percent(elapsed));
      if (!opts.owner.empty()) {
        absl::StrAppend(&out_, " &middot; owner ",
                        Escaped(SubjectLabel(config_, opts.owner)));
      }
      out_.append("</span></div>\n");
      KeyResults(opts.id);
      ObjectiveTree(opts.id);
      out_.append("</li>\n");
    }
    out_.append("</ul>\n");
  }

  void KeyResults(const std::string& objective) {
    auto found = key_results_.find(objective);
    if (found == key_results_.end()) return;
    out_.append(
        "<table class=\"krs\"><tr><th>Key result</th><th>KPI</th>"
        "<th>Subject</th><th class=\"num\">Value</th><th "
        "class=\"num\">Target</th><th>Progress</th><th>Status</th></tr>\n");
    for (const projection::KeyResultState* kr : found->second) {
      const config::KeyResultOptions& opts = *kr->key_result;
      if (!Owned(*kr)) {
        absl::StrAppend(&out_, "<tr data-key-result=\"", Escaped(opts.id),
                        "\"><td>", Escaped(opts.id), "</td><td>",
                        Escaped(opts.kpi), "</td><td>",
                        Escaped(SubjectLabel(config_, opts.subject)),
                        "</td><td colspan=\"4\">owned by another "
                        "instance</td></tr>\n");
        continue;
      }
      const absl::string_view status = projection::KrStatusName(kr->status);
      const std::string target =
          opts.direction == config::Direction::kRange
              ? absl::StrCat(Number(opts.low), "&ndash;", Number(opts.high))
              : Number(opts.target);
      absl::StrAppend(
          &out_, "<tr data-key-result=\"", Escaped(opts.id), "\"><td>",
          Escaped(opts.id), "</td><td>", Escaped(opts.kpi), "</td><td>",
          Escaped(SubjectLabel(config_, opts.subject)),
          "</td><td class=\"num value\">",
          kr->value ? Number(*kr->value) : "&ndash;", "</td><td class=\"num\">",
          target, "</td><td><div class=\"row\">",
          Bar(kr->progress, kr->expected, status), Percent(kr->progress),
          "</div></td><td><span class=\"status s-", status, "\">", status,
          "</span></td></tr>\n");
    }
    out_.append("</table>\n");
  }

  void Pips() {
    out_.append("<section id=\"pips\"><h2>PIP triggers open now</h2>\n");
    std::vector<projection::PipSubjectState> open;
    projection_.ForEachPipState([&](const projection::PipSubjectState& p) {
      if (p.state == projection::PipState::kTriggered &&
          mask_.ExportsPair(projection_, p.policy->kpi, p.subject)) {
        open.push_back(p);
      }
    });
    if (open.empty()) {
      out_.append("<p>None open.</p>");
    } else {
      out_.append(
          "<table><tr><th>Policy</th><th>Subject</th><th>Triggered</th>"
          "<th>Deadline</th><th>Next check-in</th>"
          "<th class=\"num\">Check-ins passed</th>"
          "<th class=\"num\">Milestones missed</th></tr>\n");
      for (const projection::PipSubjectState& p : open) {
        const bool checkins = projection::HasOpenCheckins(p);
        absl::StrAppend(&out_, "<tr class=\"pip\"><td>", Escaped(p.policy->id),
                        "</td><td>", Escaped(SubjectLabel(config_, p.subject)),
                        "</td><td>", FormatUtc(p.triggered_at), "</td><td>",
                        FormatUtc(p.deadline), "</td><td class=\"checkin\">",
                        !checkins ? "none configured"
                        : p.next_checkin == absl::InfiniteFuture()
                            ? "none left"
                            : FormatUtc(p.next_checkin),
                        "</td><td class=\"num\">",
                        checkins ? absl::StrCat(p.checkins_passed) : "",
                        "</td><td class=\"num\">", p.milestones_missed,
                        "</td></tr>\n");
        Plan(p);
      }
      out_.append("</table>");
    }
    out_.append(
        "<p class=\"meta\">A triggered plan recommends a review; okrd never "
        "acts on a person.</p></section>\n");
  }

  // The open plan of `p`: its actions and milestones, in the policy's order.
  void Plan(const projection::PipSubjectState& p) {
    okrd::v1::PipTransition plan;
    projection::DescribePlan(*p.policy, p.triggered_at, p.milestones,
                             plan.mutable_actions(), plan.mutable_milestones());
    if (plan.actions().empty() && plan.milestones().empty()) return;
    out_.append("<tr class=\"plan\"><td colspan=\"7\">");
    if (!plan.actions().empty()) {
      out_.append("<p class=\"meta\">Actions</p><ul class=\"actions\">");
      for (const okrd::v1::PlanAction& a : plan.actions()) {
        absl::StrAppend(&out_, "<li>", FormatUtc(FromProto(a.due())), " <b>",
                        Escaped(a.title()), "</b> <span class=\"meta\">(",
                        Escaped(a.kind()), ")</span></li>");
      }
      out_.append("</ul>");
    }
    if (!plan.milestones().empty()) {
      const bool below = p.policy->comparator == config::Comparator::kBelow;
      out_.append("<p class=\"meta\">Milestones</p><ul class=\"milestones\">");
      for (const okrd::v1::PlanMilestone& m : plan.milestones()) {
        absl::StrAppend(&out_, "<li>", FormatUtc(FromProto(m.due())), " ",
                        Escaped(m.id()), ": ", below ? "at least " : "at most ",
                        Number(m.threshold()), " <span class=\"status m-",
                        m.status(), "\">", m.status(), "</span></li>");
      }
      out_.append("</ul>");
    }
    out_.append("</td></tr>\n");
  }

  void Health() {
    int64_t lag = 0;
    for (const auto& [partition, messages] : state_.lag) lag += messages;
    uint64_t rejected = 0;
    std::map<std::string, uint64_t> reasons;
    for (const auto& [key, count] : state_.log.counters) {
      if (key.first == "rejected") {
        rejected += count;
        reasons[key.second] += count;
      }
    }
    absl::StrAppend(
        &out_,
        "<section id=\"health\"><h2>okrd health</h2>\n<table>"
        "<tr><th>Last log sequence</th><td class=\"num\" id=\"last-sequence\">",
        state_.log.last_sequence,
        "</td></tr><tr><th>Consumer lag (messages)</th><td class=\"num\" "
        "id=\"lag\">",
        lag, "</td></tr><tr><th>Rejected messages</th><td class=\"num\" ",
        "id=\"rejected\">", rejected, "</td></tr>");
    for (const auto& [reason, count] : reasons) {
      absl::StrAppend(&out_, "<tr class=\"reason\"><th>&nbsp;&nbsp;",
                      Escaped(reason), "</th><td class=\"num\">", count,
                      "</td></tr>");
    }
    out_.append("</table></section>\n");
  }

  const projection::KpiProjection& projection_;
  const config::Config& config_;
  const DaemonState& state_;
  bool Owned(const projection::KeyResultState& kr) const {
    return mask_.ExportsPair(projection_, kr.key_result->kpi,
                             kr.key_result->subject);
  }

  const projection::OkrState& okrs_;
  const projection::Ownership::Mask mask_;
  std::set<const config::ObjectiveOptions*> partial_;
  std::map<std::string, std::vector<const projection::ObjectiveState*>>
      children_;
  std::map<std::string, std::vector<const projection::KeyResultState*>>
      key_results_;
  std::string out_;
};

}  // namespace

std::string RenderStatusPage(const projection::KpiProjection& projection,
                             const DaemonState& state) {
  return Page(projection, state).Render();
}

}  // namespace okrd::exporter
