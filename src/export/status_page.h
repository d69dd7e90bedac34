#ifndef OKRD_EXPORT_STATUS_PAGE_H_
#define OKRD_EXPORT_STATUS_PAGE_H_

// The status page okrd serves at GET /: one self-contained, server-rendered
// HTML document (inline CSS, no scripts, no external assets) of one
// consistent state:
//   - objectives as a tree, each with a progress bar against the progress
//     expected by now, and its key results with value, target and status
//     colour;
//   - PIP triggers open now (state triggered), with plan deadline;
//   - daemon health: last log and projection sequence, consumer lag,
//     rejections by reason.
// Subjects appear as exported (pseudonymized when configured).
//
// Thread-safety: a pure function; the caller keeps the state still.

#include <string>

#include "export/metrics.h"
#include "projection/kpi_projection.h"

namespace okrd::exporter {

inline constexpr char kHtmlContentType[] = "text/html; charset=utf-8";

std::string RenderStatusPage(const projection::KpiProjection& projection,
                             const DaemonState& state);

}  // namespace okrd::exporter

#endif  // OKRD_EXPORT_STATUS_PAGE_H_
