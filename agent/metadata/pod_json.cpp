// SAX decoder for pods: tracks the path of every JSON value and keeps the few that podsight uses.
// Wrong types make the pod (not the page) invalid; nesting and kept strings are bounded.
#include "metadata/pod_json.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>

namespace podsight::metadata {

bool LabelAllowlist::allows(std::string_view key) const {
  return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return n == "*" || n == key; });
}

namespace {

using json = nlohmann::json;
using Path = std::initializer_list<std::string_view>;

enum class Mode { kList, kEvent };

constexpr std::string_view kArray = "[]";
constexpr std::array<std::string_view, 3> kStatusLists = {"containerStatuses", "initContainerStatuses",
                                                          "ephemeralContainerStatuses"};

std::string strip_scheme(std::string id) {
  auto p = id.find("://");
  return p == std::string::npos ? id : id.substr(p + 3);
}

class Decoder final : public nlohmann::json_sax<json> {
 public:
  Decoder(Mode mode, const LabelAllowlist& labels, const DecodeLimits& limits)
      : mode_(mode), labels_(labels), limits_(limits), pod_depth_(mode == Mode::kList ? 3 : 2) {}

  // --- results ---
  PodList list;
  std::vector<Pod> event_pods;  // event mode: the object, if it was a valid pod
  std::string event_type;
  std::string event_invalid;  // why the event's object is not a valid pod
  std::string event_rv;
  std::int64_t status_code = 0;
  std::string status_reason;
  std::string status_message;
  std::string error;  // fatal: the document as a whole is unusable
  bool saw_root_object = false;

  // --- SAX ---
  bool null() override { return scalar(Kind::kNull, nullptr, false, 0); }
  bool boolean(bool v) override { return scalar(Kind::kBool, nullptr, v, 0); }
  bool number_integer(number_integer_t v) override { return scalar(Kind::kNumber, nullptr, false, v); }
  bool number_unsigned(number_unsigned_t v) override {
    return scalar(
        Kind::kNumber, nullptr, false,
        static_cast<std::int64_t>(std::min<number_unsigned_t>(v, static_cast<number_unsigned_t>(INT64_MAX))));
  }
  bool number_float(number_float_t, const string_t&) override {
    return scalar(Kind::kNumber, nullptr, false, 0);
  }
  bool string(string_t& v) override { return scalar(Kind::kString, &v, false, 0); }
  bool binary(binary_t&) override { return scalar(Kind::kNumber, nullptr, false, 0); }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool start_object(std::size_t) override { return open(false); }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(true); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    error = "malformed JSON at byte " + std::to_string(position) + ": " + e.what();
    return false;
  }

 private:
  enum class Kind { kNull, kBool, kNumber, kString };

  [[nodiscard]] std::string_view value_seg() const {
    return arrays_.empty() ? std::string_view() : (arrays_.back() ? kArray : std::string_view(key_));
  }

  // True if the value about to be read (or the container about to open) is at `abs`, a path from the
  // document root.
  [[nodiscard]] bool at(Path abs) const {
    if (path_.size() != abs.size()) return false;
    auto want = abs.begin();
    for (std::size_t i = 1; i < path_.size(); ++i, ++want) {
      if (path_[i] != *want) return false;
    }
    return value_seg() == *want;
  }
  // Same, relative to the pod object being read.
  [[nodiscard]] bool at_pod(Path rel) const {
    if (pod_ == nullptr || path_.size() + 1 != pod_depth_ + rel.size()) return false;
    auto want = rel.begin();
    for (std::size_t i = pod_depth_; i < path_.size(); ++i, ++want) {
      if (path_[i] != *want) return false;
    }
    return value_seg() == *want;
  }
  // At a field of the container status being read: status.<list>[].<rel...>
  [[nodiscard]] bool at_status(Path rel) const {
    if (!in_status_ || path_.size() != pod_depth_ + 2 + rel.size()) return false;
    auto want = rel.begin();
    for (std::size_t i = pod_depth_ + 3; i < path_.size(); ++i, ++want) {
      if (path_[i] != *want) return false;
    }
    return value_seg() == *want;
  }
  [[nodiscard]] bool at_owner(std::string_view field) const {
    return in_owner_ && path_.size() == pod_depth_ + 3 && value_seg() == field;
  }
  [[nodiscard]] bool at_pod_root() const {
    if (path_.size() + 1 != pod_depth_) return false;
    return mode_ == Mode::kList ? at({"items", kArray}) : at({"object"});
  }
  [[nodiscard]] bool in_pod_map(std::string_view field) const {
    // metadata.labels.<key> / metadata.annotations.<key>
    return pod_ != nullptr && path_.size() == pod_depth_ + 2 && path_[pod_depth_] == "metadata" &&
           path_[pod_depth_ + 1] == field && !arrays_.back();
  }
  [[nodiscard]] bool at_status_list() const {
    if (pod_ == nullptr || path_.size() != pod_depth_ + 1 || path_[pod_depth_] != "status") return false;
    return std::find(kStatusLists.begin(), kStatusLists.end(), value_seg()) != kStatusLists.end();
  }
  [[nodiscard]] bool at_status_element() const {
    return pod_ != nullptr && path_.size() == pod_depth_ + 2 && path_[pod_depth_] == "status" &&
           std::find(kStatusLists.begin(), kStatusLists.end(), path_[pod_depth_ + 1]) != kStatusLists.end() &&
           arrays_.back();
  }

  void invalid(const std::string& why) {
    if (pod_invalid_.empty()) pod_invalid_ = why;
  }

  // Takes a kept string field; wrong types and overlong values make the pod invalid.
  void take(Kind kind, std::string* v, std::string& out, std::string_view field) {
    if (kind == Kind::kNull) return;
    if (kind != Kind::kString) return invalid(std::string(field) + " is not a string");
    if (v->size() > limits_.max_field_bytes) return invalid(std::string(field) + " is longer than the limit");
    out = std::move(*v);
  }

  bool scalar(Kind kind, std::string* s, bool b, std::int64_t n) {
    if (arrays_.empty()) {
      error = "the document is not a JSON object";
      return false;
    }
    if (mode_ == Mode::kEvent && pod_ != nullptr && path_.size() == pod_depth_) {
      // An ERROR event's object is a metav1.Status, read as a pod candidate too: keep its fields.
      if (value_seg() == "code" && kind == Kind::kNumber) status_code = n;
      if (value_seg() == "reason" && kind == Kind::kString)
        status_reason = s->substr(0, limits_.max_field_bytes);
      if (value_seg() == "message" && kind == Kind::kString)
        status_message = s->substr(0, limits_.max_field_bytes);
    }
    if (pod_ != nullptr) {
      pod_scalar(kind, s, b);
    } else if (mode_ == Mode::kList) {
      if (at({"metadata", "resourceVersion"}) && kind == Kind::kString) list.resource_version = std::move(*s);
      if (at({"metadata", "continue"}) && kind == Kind::kString) list.continue_token = std::move(*s);
      if (at({"items"}) && kind != Kind::kNull) {
        error = "items is not an array";
        return false;
      }
    } else {
      if (at({"type"})) {
        if (kind != Kind::kString) {
          error = "type is not a string";
          return false;
        }
        event_type = std::move(*s);
      } else if (at({"object"}) && kind != Kind::kNull) {
        error = "object is not a JSON object";
        return false;
      }
    }
    return true;
  }

  void pod_scalar(Kind kind, std::string* s, bool b) {
    Pod& p = *pod_;
    if (at_pod({"metadata", "uid"})) return take(kind, s, p.uid, "metadata.uid");
    if (at_pod({"metadata", "name"})) return take(kind, s, p.name, "metadata.name");
    if (at_pod({"metadata", "namespace"})) return take(kind, s, p.namespace_, "metadata.namespace");
    if (at_pod({"metadata", "resourceVersion"})) return take(kind, s, pod_rv_, "metadata.resourceVersion");
    if (at_pod({"spec", "nodeName"})) return take(kind, s, p.node, "spec.nodeName");
    if (at_pod({"status", "podIP"})) return take(kind, s, p.pod_ip, "status.podIP");
    if (at_pod({"status", "qosClass"})) return take(kind, s, p.qos_class, "status.qosClass");
    if (at_pod({"spec", "hostNetwork"})) {
      if (kind == Kind::kBool)
        p.host_network = b;
      else if (kind != Kind::kNull)
        invalid("spec.hostNetwork is not a boolean");
      return;
    }
    if (in_pod_map("labels")) {
      if (!labels_.allows(key_) || p.labels.size() >= limits_.max_labels) return;
      std::string value;
      take(kind, s, value, "metadata.labels");
      if (key_.size() > limits_.max_field_bytes) return invalid("a label key is longer than the limit");
      if (kind == Kind::kString) p.labels.emplace_back(key_, std::move(value));
      return;
    }
    if (in_pod_map("annotations")) {
      if (key_ == "kubernetes.io/config.mirror") take(kind, s, p.mirror_uid, "kubernetes.io/config.mirror");
      return;
    }
    if (at_owner("kind")) return take(kind, s, owner_kind_, "ownerReferences.kind");
    if (at_owner("name")) return take(kind, s, owner_name_, "ownerReferences.name");
    if (at_owner("controller")) {
      owner_controller_ = kind == Kind::kBool && b;
      return;
    }
    if (at_status({"name"})) return take(kind, s, cs_name_, "containerStatuses.name");
    if (at_status({"containerID"})) return take(kind, s, cs_id_, "containerStatuses.containerID");
    if (at_status({"lastState", "terminated", "containerID"})) {
      return take(kind, s, cs_last_id_, "containerStatuses.lastState.terminated.containerID");
    }
    // A scalar where podsight expects an object or array is a malformed pod, not an absent field.
    if (kind != Kind::kNull &&
        (at_pod({"metadata"}) || at_pod({"spec"}) || at_pod({"status"}) || at_pod({"metadata", "labels"}) ||
         at_pod({"metadata", "ownerReferences"}) || at_status_list())) {
      invalid(std::string(value_seg()) + " has the wrong type");
    }
  }

  bool open(bool array) {
    if (path_.size() >= limits_.max_depth) {
      error = "JSON nested deeper than " + std::to_string(limits_.max_depth) + " levels";
      return false;
    }
    if (arrays_.empty()) {
      if (array) {
        error = "the document is not a JSON object";
        return false;
      }
      saw_root_object = true;
    } else if (pod_ == nullptr) {
      if (at({"items"}) && !array) {
        error = "items is not an array";
        return false;
      }
      if (mode_ == Mode::kEvent && at({"object"}) && array) {
        error = "object is not a JSON object";
        return false;
      }
      if (at_pod_root() && !array) begin_pod();
    } else {
      const bool want_object = at_pod({"metadata"}) || at_pod({"spec"}) || at_pod({"status"}) ||
                               at_pod({"metadata", "labels"}) || at_pod({"metadata", "annotations"});
      const bool want_array = at_pod({"metadata", "ownerReferences"}) || at_status_list();
      if ((want_object && array) || (want_array && !array))
        invalid(std::string(value_seg()) + " has the wrong type");
      if (path_.size() == pod_depth_ + 2 && path_[pod_depth_] == "metadata" &&
          path_[pod_depth_ + 1] == "ownerReferences" && arrays_.back() && !array) {
        in_owner_ = true;
        owner_kind_.clear();
        owner_name_.clear();
        owner_controller_ = false;
      }
      if (at_status_element() && !array) {
        in_status_ = true;
        status_list_ = path_[pod_depth_ + 1];
        cs_name_.clear();
        cs_id_.clear();
        cs_last_id_.clear();
      }
    }
    path_.emplace_back(value_seg());
    arrays_.push_back(array);
    key_.clear();
    return true;
  }

  bool close() {
    path_.pop_back();
    arrays_.pop_back();
    if (pod_ != nullptr) {
      if (path_.size() + 1 == pod_depth_) {
        end_pod();
      } else if (in_owner_ && path_.size() == pod_depth_ + 2) {
        in_owner_ = false;
        if (pod_->owner_kind.empty() || owner_controller_) {
          pod_->owner_kind = owner_kind_;
          pod_->owner_name = owner_name_;
        }
      } else if (in_status_ && path_.size() == pod_depth_ + 2) {
        in_status_ = false;
        end_container_status();
      }
    }
    return true;
  }

  void begin_pod() {
    pod_storage_ = Pod{};
    pod_ = &pod_storage_;
    pod_invalid_.clear();
    pod_rv_.clear();
    app_statuses_ = 0;
    missing_ids_ = false;
  }

  void end_container_status() {
    const bool app = status_list_ == "containerStatuses";
    app_statuses_ += app ? 1 : 0;
    if (status_list_ != "ephemeralContainerStatuses" && cs_id_.empty()) missing_ids_ = true;
    // Checked before each push: a status adds up to two IDs (current and previous).
    const auto keep = [&](const std::string& id) {
      if (pod_->containers.size() < limits_.max_containers)
        pod_->containers.push_back({strip_scheme(id), cs_name_});
    };
    if (!cs_id_.empty()) keep(cs_id_);
    if (!cs_last_id_.empty() && cs_last_id_ != cs_id_) keep(cs_last_id_);
  }

  void end_pod() {
    Pod& p = *pod_;
    pod_ = nullptr;
    if (mode_ == Mode::kEvent) event_rv = pod_rv_;
    if (pod_invalid_.empty()) {
      if (p.uid.empty())
        pod_invalid_ = "metadata.uid is missing";
      else if (p.name.empty())
        pod_invalid_ = "metadata.name is missing";
      else if (p.namespace_.empty())
        pod_invalid_ = "metadata.namespace is missing";
    }
    if (!pod_invalid_.empty()) {
      const std::string where = p.uid.empty() ? std::string() : " (pod " + p.uid + ")";
      if (mode_ == Mode::kList) {
        if (list.skipped++ == 0) list.first_skip_reason = pod_invalid_ + where;
      } else {
        event_invalid = pod_invalid_ + where;
      }
      return;
    }
    p.all_ids_known = app_statuses_ > 0 && !missing_ids_;
    std::sort(p.labels.begin(), p.labels.end());
    if (mode_ == Mode::kList) {
      list.pods.push_back(std::move(p));
    } else {
      event_pods.push_back(std::move(p));
    }
  }

  Mode mode_;
  const LabelAllowlist& labels_;
  const DecodeLimits& limits_;
  const std::size_t pod_depth_;  // path_ size while inside the pod object

  std::vector<std::string> path_;  // how each open container was entered: key, "[]" or "" (root)
  std::vector<bool> arrays_;       // whether each open container is an array
  std::string key_;                // the last key read in the innermost object

  Pod pod_storage_;
  Pod* pod_ = nullptr;  // the pod being read, if any
  std::string pod_invalid_;
  std::string pod_rv_;
  bool in_owner_ = false;
  std::string owner_kind_, owner_name_;
  bool owner_controller_ = false;
  bool in_status_ = false;
  std::string status_list_;
  std::string cs_name_, cs_id_, cs_last_id_;
  std::size_t app_statuses_ = 0;
  bool missing_ids_ = false;
};

bool run(Decoder& d, std::string_view text) {
  return json::sax_parse(text.data(), text.data() + text.size(), &d, json::input_format_t::json, true) &&
         d.error.empty();
}

}  // namespace

Result<PodList> decode_pod_list(std::string_view text, const LabelAllowlist& labels,
                                const DecodeLimits& limits) {
  Decoder d(Mode::kList, labels, limits);
  if (!run(d, text))
    return Error{"decode pod list: " + (d.error.empty() ? "malformed JSON" : d.error), {}, 0};
  if (d.list.resource_version.empty())
    return Error{"decode pod list: metadata.resourceVersion is missing", {}, 0};
  return std::move(d.list);
}

Result<WatchEvent> decode_watch_event(std::string_view text, const LabelAllowlist& labels,
                                      const DecodeLimits& limits) {
  Decoder d(Mode::kEvent, labels, limits);
  if (!run(d, text))
    return Error{"decode watch event: " + (d.error.empty() ? "malformed JSON" : d.error), {}, 0};
  WatchEvent ev;
  ev.resource_version = d.event_rv;
  if (d.event_type == "ERROR") {
    ev.type = EventType::kError;
    ev.code = static_cast<int>(std::clamp<std::int64_t>(d.status_code, 0, 999));
    ev.reason = d.status_reason;
    ev.message = d.status_message;
    return ev;
  }
  if (d.event_type == "BOOKMARK") {
    if (ev.resource_version.empty())
      return Error{"decode watch event: BOOKMARK without resourceVersion", {}, 0};
    ev.type = EventType::kBookmark;
    return ev;
  }
  if (d.event_type == "ADDED") {
    ev.type = EventType::kAdded;
  } else if (d.event_type == "MODIFIED") {
    ev.type = EventType::kModified;
  } else if (d.event_type == "DELETED") {
    ev.type = EventType::kDeleted;
  } else {
    return Error{"decode watch event: unknown type \"" + d.event_type.substr(0, 64) + "\"", {}, 0};
  }
  if (!d.event_invalid.empty()) return Error{"decode watch event: " + d.event_invalid, {}, 0};
  if (d.event_pods.size() != 1) return Error{"decode watch event: no pod object", {}, 0};
  ev.pod = std::move(d.event_pods.front());
  return ev;
}

std::string status_message(std::string_view body) {
  auto doc = json::parse(body.begin(), body.end(), nullptr, false);
  if (!doc.is_object()) return {};
  auto it = doc.find("message");
  if (it == doc.end() || !it->is_string()) return {};
  return it->get<std::string>().substr(0, 512);
}

}  // namespace podsight::metadata
