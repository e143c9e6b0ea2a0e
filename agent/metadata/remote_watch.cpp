// Decoding of cluster pods and services for the remote-address index, and the watch targets that feed
// it. nlohmann's parser callback drops every member off the paths we keep while it parses.
#include "metadata/remote_watch.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <initializer_list>

namespace podsight::metadata {
namespace {

using nlohmann::json;
using Path = std::vector<std::string_view>;

constexpr std::size_t kMaxAddresses = 16;  // of one kind per object; dual stack needs 2

// Parses `text`, keeping only members on or below `keep` (paths from the document root; "*" is any
// array element). The result holds nothing else, whatever the input carried.
Result<json> parse_kept(std::string_view text, const std::vector<Path>& keep) {
  std::vector<std::string> path;  // segment of each open container below the root
  std::vector<bool> in_array;     // whether each open container, the root first, is an array
  std::string key;
  auto kept = [&](const std::string& last) {
    for (const auto& k : keep) {
      const std::size_t n = std::min(k.size(), path.size());
      bool match = true;
      for (std::size_t i = 0; i < n && match; ++i) match = k[i] == path[i];
      if (match && n == path.size() && n < k.size()) match = k[n] == last;
      if (match) return true;
    }
    return false;
  };
  // The callback is told the depth of every key and container start (end events of discarded
  // containers are not reported, so the path is cut to the depth rather than popped).
  const json::parser_callback_t filter = [&](int depth, json::parse_event_t event, json& parsed) {
    const auto d = static_cast<std::size_t>(std::max(depth, 0));
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        in_array.resize(d);
        if (d >= 1) {
          path.resize(d - 1);
          path.push_back(in_array[d - 1] ? "*" : key);
        }
        in_array.push_back(event == json::parse_event_t::array_start);
        return true;
      case json::parse_event_t::key:
        path.resize(d >= 1 ? d - 1 : 0);
        key = parsed.get<std::string>();
        return kept(key);
      default:
        return true;
    }
  };
  json doc = json::parse(text.begin(), text.end(), filter, false);
  if (doc.is_discarded()) return Error{"malformed JSON", {}, 0};
  if (!doc.is_object()) return Error{"the document is not a JSON object", {}, 0};
  return doc;
}

// Reads the kept fields of one object, recording the first thing wrong with it.
class Fields {
 public:
  Fields(const json& object, const DecodeLimits& limits) : object_(object), limits_(limits) {}

  [[nodiscard]] const std::string& problem() const { return problem_; }

  [[nodiscard]] const json* at(std::initializer_list<const char*> path) const {
    const json* j = &object_;
    for (const char* k : path) {
      if (!j->is_object()) return nullptr;
      auto it = j->find(k);
      if (it == j->end() || it->is_null()) return nullptr;
      j = &*it;
    }
    return j;
  }

  std::string string(std::initializer_list<const char*> path, const char* name) {
    const json* j = at(path);
    if (j == nullptr) return {};
    if (!j->is_string()) return bad(std::string(name) + " is not a string");
    const auto& s = j->get_ref<const std::string&>();
    if (s.size() > limits_.max_field_bytes) return bad(std::string(name) + " is longer than the limit");
    return s;
  }

  bool boolean(std::initializer_list<const char*> path, const char* name) {
    const json* j = at(path);
    if (j == nullptr) return false;
    if (!j->is_boolean()) {
      bad(std::string(name) + " is not a boolean");
      return false;
    }
    return j->get<bool>();
  }

  // A list of strings, or with `member` a list of objects carrying the string in `member`.
  void strings(std::initializer_list<const char*> path, const char* member, const char* name,
               std::vector<std::string>& out) {
    const json* j = at(path);
    if (j == nullptr) return;
    if (!j->is_array()) {
      bad(std::string(name) + " is not a list");
      return;
    }
    for (const auto& e : *j) {
      const json* v = &e;
      if (member != nullptr) {
        if (!e.is_object() || !e.contains(member)) continue;  // e.g. a load balancer with a hostname only
        v = &e[member];
      }
      if (!v->is_string()) {
        bad(std::string(name) + " holds something other than strings");
        return;
      }
      if (v->get_ref<const std::string&>().size() > limits_.max_field_bytes) {
        bad(std::string(name) + " holds a string longer than the limit");
        return;
      }
      if (out.size() >= kMaxAddresses) {
        bad(std::string(name) + " holds more than 16 addresses");
        return;
      }
      out.push_back(v->get<std::string>());
    }
  }

 private:
  std::string bad(std::string why) {
    if (problem_.empty()) problem_ = std::move(why);
    return {};
  }

  const json& object_;
  const DecodeLimits& limits_;
  std::string problem_;
};

const std::vector<std::string_view> kMetadata = {"uid", "name", "namespace", "resourceVersion"};

// The kept paths of a list (below "items", "*") or a watch event (below "object").
std::vector<Path> paths(bool list, const std::vector<Path>& object_paths) {
  std::vector<Path> out;
  if (list) {
    out = {{"metadata", "resourceVersion"}, {"metadata", "continue"}};
  } else {
    out = {{"type"}, {"object", "code"}, {"object", "reason"}, {"object", "message"}};
  }
  for (auto p : object_paths) {
    if (list) {
      p.insert(p.begin(), {"items", "*"});
    } else {
      p.insert(p.begin(), "object");
    }
    out.push_back(std::move(p));
  }
  for (auto m : kMetadata)
    out.push_back(list ? Path{"items", "*", "metadata", m} : Path{"object", "metadata", m});
  return out;
}

const std::vector<Path> kPodPaths = {{"spec", "nodeName"}, {"spec", "hostNetwork"}, {"status", "phase"},
                                     {"status", "podIP"},  {"status", "podIPs"},    {"status", "hostIP"},
                                     {"status", "hostIPs"}};
const std::vector<Path> kServicePaths = {{"spec", "clusterIP"},
                                         {"spec", "clusterIPs"},
                                         {"spec", "externalIPs"},
                                         {"status", "loadBalancer", "ingress"}};

// Fills what every object has; false (with the reason in f.problem()) if it is not a valid object.
template <typename T>
bool identity(Fields& f, T& out) {
  out.uid = f.string({"metadata", "uid"}, "metadata.uid");
  out.name = f.string({"metadata", "name"}, "metadata.name");
  out.namespace_ = f.string({"metadata", "namespace"}, "metadata.namespace");
  return f.problem().empty() && !out.uid.empty() && !out.name.empty() && !out.namespace_.empty();
}

std::string why_invalid(const Fields& f) {
  return f.problem().empty() ? "metadata.uid, name or namespace is missing" : f.problem();
}

bool read_object(const json& j, const DecodeLimits& limits, RemotePod& out, std::string& why) {
  Fields f(j, limits);
  if (!identity(f, out)) {
    why = why_invalid(f);
    return false;
  }
  out.node = f.string({"spec", "nodeName"}, "spec.nodeName");
  out.host_network = f.boolean({"spec", "hostNetwork"}, "spec.hostNetwork");
  const std::string phase = f.string({"status", "phase"}, "status.phase");
  out.terminated = phase == "Succeeded" || phase == "Failed";
  f.strings({"status", "podIPs"}, "ip", "status.podIPs", out.ips);
  if (out.ips.empty()) {
    if (auto ip = f.string({"status", "podIP"}, "status.podIP"); !ip.empty()) out.ips.push_back(ip);
  }
  f.strings({"status", "hostIPs"}, "ip", "status.hostIPs", out.host_ips);
  if (out.host_ips.empty()) {
    if (auto ip = f.string({"status", "hostIP"}, "status.hostIP"); !ip.empty()) out.host_ips.push_back(ip);
  }
  why = f.problem();
  return why.empty();
}

bool read_object(const json& j, const DecodeLimits& limits, RemoteService& out, std::string& why) {
  Fields f(j, limits);
  if (!identity(f, out)) {
    why = why_invalid(f);
    return false;
  }
  f.strings({"spec", "clusterIPs"}, nullptr, "spec.clusterIPs", out.ips);
  if (out.ips.empty()) {
    if (auto ip = f.string({"spec", "clusterIP"}, "spec.clusterIP"); !ip.empty()) out.ips.push_back(ip);
  }
  f.strings({"spec", "externalIPs"}, nullptr, "spec.externalIPs", out.ips);
  f.strings({"status", "loadBalancer", "ingress"}, "ip", "status.loadBalancer.ingress", out.ips);
  why = f.problem();
  return why.empty();
}

template <typename T>
Result<RemoteList<T>> decode_list(std::string_view text, const std::vector<Path>& object_paths,
                                  const DecodeLimits& limits) {
  auto doc = parse_kept(text, paths(true, object_paths));
  if (!doc) return Error{"decode list: " + doc.error().message(), {}, 0};
  RemoteList<T> out;
  Fields f(*doc, limits);
  out.resource_version = f.string({"metadata", "resourceVersion"}, "metadata.resourceVersion");
  out.continue_token = f.string({"metadata", "continue"}, "metadata.continue");
  if (!f.problem().empty()) return Error{"decode list: " + f.problem(), {}, 0};
  if (out.resource_version.empty()) return Error{"decode list: metadata.resourceVersion is missing", {}, 0};
  const json* items = f.at({"items"});
  if (items == nullptr) return out;
  if (!items->is_array()) return Error{"decode list: items is not an array", {}, 0};
  for (const auto& item : *items) {
    T object;
    std::string why;
    if (item.is_object() && read_object(item, limits, object, why)) {
      out.items.push_back(std::move(object));
    } else if (out.skipped++ == 0) {
      out.first_skip_reason = item.is_object() ? why : "an item is not an object";
    }
  }
  return out;
}

template <typename T>
Result<RemoteEvent<T>> decode_event(std::string_view text, const std::vector<Path>& object_paths,
                                    const DecodeLimits& limits) {
  auto doc = parse_kept(text, paths(false, object_paths));
  if (!doc) return Error{"decode watch event: " + doc.error().message(), {}, 0};
  RemoteEvent<T> ev;
  Fields f(*doc, limits);
  const std::string type = f.string({"type"}, "type");
  const json* object = f.at({"object"});
  if (!f.problem().empty()) return Error{"decode watch event: " + f.problem(), {}, 0};
  if (object == nullptr || !object->is_object()) return Error{"decode watch event: no object", {}, 0};
  Fields o(*object, limits);
  ev.resource_version = o.string({"metadata", "resourceVersion"}, "metadata.resourceVersion");
  if (type == "ERROR") {
    ev.type = EventType::kError;
    const json* code = o.at({"code"});
    ev.code = code != nullptr && code->is_number_integer() ? std::clamp(code->get<int>(), 0, 999) : 0;
    ev.reason = o.string({"reason"}, "reason");
    ev.message = o.string({"message"}, "message");
    return ev;
  }
  if (type == "BOOKMARK") {
    if (ev.resource_version.empty())
      return Error{"decode watch event: BOOKMARK without resourceVersion", {}, 0};
    ev.type = EventType::kBookmark;
    return ev;
  }
  if (type == "ADDED") {
    ev.type = EventType::kAdded;
  } else if (type == "MODIFIED") {
    ev.type = EventType::kModified;
  } else if (type == "DELETED") {
    ev.type = EventType::kDeleted;
  } else {
    return Error{"decode watch event: unknown type \"" + type.substr(0, 64) + "\"", {}, 0};
  }
  std::string why;
  if (!read_object(*object, limits, ev.object, why)) return Error{"decode watch event: " + why, {}, 0};
  return ev;
}

template <typename T>
ListPage page_of(RemoteList<T>& list, std::vector<T>& into) {
  for (auto& item : list.items) into.push_back(std::move(item));
  return ListPage{std::move(list.resource_version), std::move(list.continue_token), list.skipped,
                  std::move(list.first_skip_reason)};
}

template <typename T>
AppliedEvent applied(RemoteEvent<T>& ev) {
  return AppliedEvent{
      ev.type, std::move(ev.resource_version), ev.code, std::move(ev.reason), std::move(ev.message), {}};
}

}  // namespace

Result<RemoteList<RemotePod>> decode_remote_pod_list(std::string_view json, const DecodeLimits& limits) {
  return decode_list<RemotePod>(json, kPodPaths, limits);
}
Result<RemoteEvent<RemotePod>> decode_remote_pod_event(std::string_view json, const DecodeLimits& limits) {
  return decode_event<RemotePod>(json, kPodPaths, limits);
}
Result<RemoteList<RemoteService>> decode_service_list(std::string_view json, const DecodeLimits& limits) {
  return decode_list<RemoteService>(json, kServicePaths, limits);
}
Result<RemoteEvent<RemoteService>> decode_service_event(std::string_view json, const DecodeLimits& limits) {
  return decode_event<RemoteService>(json, kServicePaths, limits);
}

namespace {

// What differs between the kinds: the decoders and the index's calls.
Result<RemoteList<RemotePod>> decode_list_of(std::string_view body, const DecodeLimits& limits, RemotePod*) {
  return decode_remote_pod_list(body, limits);
}
Result<RemoteList<RemoteService>> decode_list_of(std::string_view body, const DecodeLimits& limits,
                                                 RemoteService*) {
  return decode_service_list(body, limits);
}
Result<RemoteEvent<RemotePod>> decode_event_of(std::string_view line, const DecodeLimits& limits,
                                               RemotePod*) {
  return decode_remote_pod_event(line, limits);
}
Result<RemoteEvent<RemoteService>> decode_event_of(std::string_view line, const DecodeLimits& limits,
                                                   RemoteService*) {
  return decode_service_event(line, limits);
}
std::size_t replace_in(RemoteIndex& index, std::vector<RemotePod> pods) {
  return index.replace_pods(std::move(pods), RemoteIndex::Clock::now());
}
std::size_t replace_in(RemoteIndex& index, std::vector<RemoteService> services) {
  return index.replace_services(std::move(services), RemoteIndex::Clock::now());
}
std::size_t upsert_in(RemoteIndex& index, RemotePod pod) {
  return index.upsert_pod(std::move(pod), RemoteIndex::Clock::now());
}
std::size_t upsert_in(RemoteIndex& index, RemoteService service) {
  return index.upsert_service(std::move(service), RemoteIndex::Clock::now());
}
void remove_in(RemoteIndex& index, const RemotePod& pod) {
  index.remove_pod(pod.uid, RemoteIndex::Clock::now());
}
void remove_in(RemoteIndex& index, const RemoteService& service) {
  index.remove_service(service.uid, RemoteIndex::Clock::now());
}

}  // namespace

template <>
std::string IndexTarget<RemotePod>::resource() const {
  return "pods";
}
template <>
std::string IndexTarget<RemoteService>::resource() const {
  return "services";
}

template <typename T>
Result<ListPage> IndexTarget<T>::add_page(std::string_view body) {
  auto list = decode_list_of(body, limits_, static_cast<T*>(nullptr));
  if (!list) return list.error();
  return page_of(*list, objects_);
}

template <typename T>
std::size_t IndexTarget<T>::commit_list() {
  auto objects = std::move(objects_);
  objects_.clear();
  return replace_in(index_, std::move(objects));
}

template <typename T>
Result<AppliedEvent> IndexTarget<T>::apply_event(std::string_view line) {
  auto ev = decode_event_of(line, limits_, static_cast<T*>(nullptr));
  if (!ev) return ev.error();
  auto out = applied(*ev);
  if (ev->type == EventType::kAdded || ev->type == EventType::kModified) {
    const std::string name = ev->object.namespace_ + "/" + ev->object.name;
    if (upsert_in(index_, std::move(ev->object)) > 0) out.refused = resource() + " " + name;
  } else if (ev->type == EventType::kDeleted) {
    remove_in(index_, ev->object);
  }
  return out;
}

template class IndexTarget<RemotePod>;
template class IndexTarget<RemoteService>;

}  // namespace podsight::metadata
