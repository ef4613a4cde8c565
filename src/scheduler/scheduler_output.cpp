// What a scheduler says about itself: listings, DOT, Chrome trace, critical path.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "../text.hpp"
#include "roadie/scheduler.hpp"
#include "scheduler_impl.hpp"

// Everything here works on a snapshot of views (detail::Snapshot): no lock is
// held while the text is made.

namespace roadie {

using detail::Clock;
using detail::seconds;
using detail::Snapshot;

namespace {

bool utf8_terminal() {
  for (const char* name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') continue;
    std::string v(value);
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    return v.find("utf-8") != std::string::npos || v.find("utf8") != std::string::npos;
  }
  return false;
}

std::string pad(std::string text, std::size_t width) {
  // Column widths count characters, not bytes (labels are usually ASCII).
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

std::string detail_of(const JobView& n) {
  switch (n.state) {
    case JobState::done: {
      std::string text = "[" + seconds(n.duration) + "]";
      if (!n.result.empty()) text += " -> " + n.result;
      return text;
    }
    case JobState::ready:
      return "[ready in " + seconds(n.duration) + "]";
    case JobState::failed:
      return "!! " + n.reason;
    case JobState::stopped:
      return "(stop: " + n.reason + ")";
    case JobState::skipped:
    case JobState::cancelled:
    case JobState::timed_out:
      return n.reason.empty() ? "" : "(" + n.reason + ")";
    default:
      return "";
  }
}

void list_into(const Snapshot& s, const std::string& prefix, const std::string& indent,
               bool unicode, std::string& out) {
  std::size_t id_width = 0, label_width = 0;
  for (const auto& n : s.jobs) {
    id_width = std::max(id_width, n.number.size());
    label_width = std::max(label_width, n.label.size());
  }
  for (std::size_t j = 0; j < s.jobs.size(); ++j) {
    const JobView& n = s.jobs[j];
    std::string line = indent + pad(n.number, id_width) + " ";
    line += n.critical ? (unicode ? "⚠" : "!") : " ";
    line += n.forever ? (unicode ? "∞" : "~") : " ";
    line += " " + pad(std::string(to_string(n.state)), 9) + " " + pad(n.label, label_width);
    std::string detail = detail_of(n);
    if (!detail.empty()) line += " " + detail;
    if (!n.requirements.empty()) {
      line += " requires={";
      for (std::size_t i = 0; i < n.requirements.size(); ++i) {
        if (i) line += ", ";
        line += prefix + std::to_string(n.requirements[i].id);
        if (n.requirements[i].allow_failure) line += "?";
      }
      line += "}";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
    if (s.inner[j]) list_into(*s.inner[j], n.number + ".", indent + "  ", unicode, out);
  }
}

const char* colour(JobState s) {
  switch (s) {
    case JobState::idle:
      return "#eeeeee";
    case JobState::waiting:
      return "#fff2cc";
    case JobState::running:
      return "#cfe2f3";
    case JobState::ready:
      return "#b6d7a8";
    case JobState::done:
      return "#d9ead3";
    case JobState::failed:
      return "#f4cccc";
    case JobState::skipped:
      return "#d9d9d9";
    case JobState::cancelled:
      return "#fce5cd";
    case JobState::timed_out:
      return "#ead1dc";
    case JobState::stopped:
      return "#d0e0e3";
  }
  return "#ffffff";
}

std::string dot_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

void dot_into(const Snapshot& s, const std::string& prefix, const std::string& indent,
              std::string& out) {
  for (std::size_t j = 0; j < s.jobs.size(); ++j) {
    const JobView& n = s.jobs[j];
    std::string id = "j" + prefix + std::to_string(n.id);
    std::string style = "rounded,filled";
    if (n.forever) style += ",dashed";
    std::string node = id + " [label=\"" + dot_escape(n.label) + "\\n" +
                       std::string(to_string(n.state)) + "\", fillcolor=\"" + colour(n.state) +
                       "\", style=\"" + style + "\"";
    if (n.critical) node += ", penwidth=2";
    node += "];";
    if (s.inner[j]) {
      out += indent + "subgraph cluster_" + prefix + std::to_string(n.id) + " {\n";
      out += indent + "  label=\"" + dot_escape(n.label) + "\"; style=\"rounded\";\n";
      out += indent + "  " + node + "\n";
      dot_into(*s.inner[j], prefix + std::to_string(n.id) + "_", indent + "  ", out);
      out += indent + "}\n";
    } else {
      out += indent + node + "\n";
    }
  }
  for (const auto& n : s.jobs) {
    for (const auto& r : n.requirements) {
      out += indent + "j" + prefix + std::to_string(r.id) + " -> j" + prefix +
             std::to_string(n.id) + (r.allow_failure ? " [style=dashed, label=\"may fail\"];" : ";") +
             "\n";
    }
  }
}

struct Span {
  std::string name;
  std::string category;
  Clock::time_point start, end;
  std::string state;
  std::string reason;
};

void spans_of(const Snapshot& s, const std::string& prefix, std::vector<Span>& spans) {
  for (std::size_t j = 0; j < s.jobs.size(); ++j) {
    const JobView& n = s.jobs[j];
    if (!n.start_time) continue;
    Span span;
    span.name = prefix + n.label;
    span.start = *n.start_time;
    span.end = n.end_time ? *n.end_time : s.run_end;
    span.state = std::string(to_string(n.state));
    span.reason = n.reason;
    switch (n.kind) {
      case JobKind::callable:
        span.category = "job";
        break;
      case JobKind::service:
        span.category = "service";
        span.name += ": waiting for " + n.readiness;
        break;
      case JobKind::scheduler:
        span.category = "scheduler";
        break;
    }
    spans.push_back(span);
    if (s.inner[j]) spans_of(*s.inner[j], prefix + n.label + " / ", spans);
  }
}

}  // namespace

std::string Scheduler::list(Glyphs glyphs) const {
  bool unicode = glyphs == Glyphs::unicode || (glyphs == Glyphs::automatic && utf8_terminal());
  std::string out;
  list_into(detail::snapshot_of(*impl_), "", "", unicode, out);
  return out;
}

std::string Scheduler::debrief(Glyphs glyphs) const {
  bool unicode = glyphs == Glyphs::unicode || (glyphs == Glyphs::automatic && utf8_terminal());
  const Snapshot snap = detail::snapshot_of(*impl_);
  std::string out;
  list_into(snap, "", "", unicode, out);
  std::map<std::string, int> counts;
  for (const auto& n : snap.jobs) ++counts[std::string(to_string(n.state))];
  out += std::to_string(snap.jobs.size()) + " job(s):";
  bool first = true;
  for (const auto& [state, count] : counts) {
    out += (first ? " " : ", ") + std::to_string(count) + " " + state;
    first = false;
  }
  out += "\n";
  if (snap.has_run) out += snap.ok ? "the run succeeded\n" : "the run failed: " + snap.why + "\n";
  bool header = false;
  for (const auto& n : snap.jobs) {
    if (n.state == JobState::done || n.state == JobState::ready || n.state == JobState::stopped ||
        n.state == JobState::idle || n.reason.empty()) {
      continue;
    }
    if (!header) out += "reasons:\n";
    header = true;
    out += "  " + n.label + " (" + std::string(to_string(n.state)) + "): " + n.reason + "\n";
  }
  return out;
}

std::string Scheduler::to_dot() const {
  const Snapshot snap = detail::snapshot_of(*impl_);
  std::string out = "digraph \"" + dot_escape(snap.label) + "\" {\n";
  out += "  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n";
  dot_into(snap, "", "  ", out);
  out += "}\n";
  return out;
}

std::string Scheduler::to_chrome_trace() const {
  const Snapshot snap = detail::snapshot_of(*impl_);
  std::vector<Span> spans;
  const Clock::time_point origin = snap.run_start;
  spans_of(snap, "", spans);
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.start < b.start; });
  // Lanes: each span goes to the first lane free at its start.
  std::vector<Clock::time_point> lane_end;
  nlohmann::json events = nlohmann::json::array();
  auto micros = [&](Clock::time_point t) {
    return std::chrono::duration<double, std::micro>(t - origin).count();
  };
  for (const auto& span : spans) {
    std::size_t lane = 0;
    while (lane < lane_end.size() && lane_end[lane] > span.start) ++lane;
    if (lane == lane_end.size()) lane_end.push_back(span.end);
    lane_end[lane] = span.end;
    events.push_back({{"name", span.name},
                      {"cat", span.category},
                      {"ph", "X"},
                      {"ts", micros(span.start)},
                      {"dur", micros(span.end) - micros(span.start)},
                      {"pid", 1},
                      {"tid", lane + 1},
                      {"args", {{"state", span.state}, {"reason", span.reason}}}});
  }
  events.push_back({{"name", "process_name"},
                    {"ph", "M"},
                    {"pid", 1},
                    {"args", {{"name", "roadie: " + snap.label}}}});
  nlohmann::json trace = {{"traceEvents", events}, {"displayTimeUnit", "ms"}};
  return trace.dump(1);
}

std::string Scheduler::critical_path() const {
  const Snapshot snap = detail::snapshot_of(*impl_);
  const auto& jobs = snap.jobs;
  const JobView* last = nullptr;
  for (const auto& n : jobs) {
    if (!n.end_time || !n.start_time || n.forever) continue;
    if (last == nullptr || *n.end_time > *last->end_time) last = &n;
  }
  if (last == nullptr) return "bring-up: nothing ran";
  // Walk back through the requirement that finished last: the one that gated each start.
  std::vector<const JobView*> path{last};
  for (const JobView* n = last;;) {
    const JobView* gate = nullptr;
    for (const auto& r : n->requirements) {
      const JobView& req = jobs[r.id - 1];
      // Only what ran can have held a start back (a skipped job has no start).
      if (req.end_time && req.start_time &&
          (gate == nullptr || *req.end_time > *gate->end_time)) {
        gate = &req;
      }
    }
    if (gate == nullptr) break;
    path.push_back(gate);
    n = gate;
  }
  std::reverse(path.begin(), path.end());
  std::string text = "bring-up " + seconds(*last->end_time - snap.run_start) + "; critical path ";
  for (std::size_t i = 0; i < path.size(); ++i) text += (i ? " -> " : "") + path[i]->label;
  text += " (" + seconds(*last->end_time - *path.front()->start_time) + ")";
  return text;
}

}  // namespace roadie
