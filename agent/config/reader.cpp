// Strict, path-aware reading of JSON config objects.
#include "config/reader.hpp"

#include <algorithm>

namespace podsight::config {

std::string describe(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "an integer";
    case nlohmann::json::value_t::number_float: return "a number with a fraction";
    default: return "an unsupported value";
  }
}

ObjectReader::ObjectReader(const nlohmann::json* object, std::string path, std::vector<std::string>& errors,
                           std::vector<std::string>* known)
    : object_(object), path_(std::move(path)), errors_(&errors), known_(known) {
  if (object_ != nullptr && !object_->is_object()) {
    errors_->push_back((path_.empty() ? std::string("config") : path_) + ": must be an object, got " +
                       describe(*object_));
    object_ = nullptr;
  }
}

std::string ObjectReader::key_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void ObjectReader::fail(std::string_view key, const std::string& problem) {
  errors_->push_back(key_path(key) + ": " + problem);
}

const nlohmann::json* ObjectReader::find(std::string_view key) {
  seen_.emplace(key);
  if (known_ != nullptr) known_->push_back(key_path(key));
  if (object_ == nullptr) return nullptr;
  auto it = object_->find(std::string(key));
  return it == object_->end() ? nullptr : &*it;
}

void ObjectReader::boolean(std::string_view key, bool& out) {
  const auto* v = find(key);
  if (v == nullptr) return;
  if (!v->is_boolean()) return fail(key, "must be true or false, got " + describe(*v));
  out = v->get<bool>();
}

void ObjectReader::string(std::string_view key, std::string& out) {
  const auto* v = find(key);
  if (v == nullptr) return;
  if (!v->is_string()) return fail(key, "must be a string, got " + describe(*v));
  out = v->get<std::string>();
}

void ObjectReader::choice(std::string_view key, std::initializer_list<std::string_view> allowed,
                          std::string& out) {
  const auto* v = find(key);
  if (v == nullptr) return;
  std::string list;
  for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  if (!v->is_string()) return fail(key, "must be one of " + list + ", got " + describe(*v));
  auto s = v->get<std::string>();
  if (std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
    return fail(key, "must be one of " + list + ", got \"" + s + "\"");
  }
  out = s;
}

void ObjectReader::integer(std::string_view key, std::int64_t min, std::int64_t max, std::int64_t& out) {
  const auto* v = find(key);
  if (v == nullptr) return;
  const std::string range = "[" + std::to_string(min) + ", " + std::to_string(max) + "]";
  if (v->is_number_unsigned()) {
    auto u = v->get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(max)) {
      return fail(key, "must be an integer in " + range + ", got " + std::to_string(u));
    }
    out = static_cast<std::int64_t>(u);
  } else if (v->is_number_integer()) {
    auto i = v->get<std::int64_t>();
    if (i < min || i > max) return fail(key, "must be an integer in " + range + ", got " + std::to_string(i));
    out = i;
  } else {
    return fail(key, "must be an integer in " + range + ", got " + describe(*v));
  }
  if (out < min) fail(key, "must be an integer in " + range + ", got " + std::to_string(out));
}

void ObjectReader::string_list(std::string_view key, std::vector<std::string>& out) {
  const auto* v = find(key);
  if (v == nullptr) return;
  if (!v->is_array()) return fail(key, "must be an array of strings, got " + describe(*v));
  std::vector<std::string> values;
  for (std::size_t i = 0; i < v->size(); ++i) {
    const auto& e = (*v)[i];
    if (!e.is_string()) {
      return fail(key, "must be an array of strings, element " + std::to_string(i) + " is " + describe(e));
    }
    values.push_back(e.get<std::string>());
  }
  out = std::move(values);
}

bool ObjectReader::has(std::string_view key) const {
  return object_ != nullptr && object_->contains(std::string(key));
}

void ObjectReader::integer_map(std::string_view key, std::int64_t min, std::int64_t max,
                               std::map<std::string, std::int64_t>& out) {
  const auto* v = find(key);
  if (v == nullptr) return;
  if (!v->is_object()) return fail(key, "must be an object of integers, got " + describe(*v));
  const std::string range = "[" + std::to_string(min) + ", " + std::to_string(max) + "]";
  std::map<std::string, std::int64_t> values;
  for (const auto& [name, e] : v->items()) {
    const bool in_range =
        (e.is_number_unsigned() && e.get<std::uint64_t>() <= static_cast<std::uint64_t>(max) &&
         static_cast<std::int64_t>(e.get<std::uint64_t>()) >= min) ||
        (e.is_number_integer() && !e.is_number_unsigned() && e.get<std::int64_t>() >= min &&
         e.get<std::int64_t>() <= max);
    if (!in_range) {
      return fail(key, "\"" + name + "\" must be an integer in " + range + ", got " +
                           (e.is_number() ? e.dump() : describe(e)));
    }
    values[name] = e.get<std::int64_t>();
  }
  out = std::move(values);
}

ObjectReader ObjectReader::object(std::string_view key) {
  return ObjectReader(find(key), key_path(key), *errors_, known_);
}

void ObjectReader::reject_unknown() {
  if (object_ == nullptr) return;
  for (const auto& [k, _] : object_->items()) {
    if (seen_.find(k) == seen_.end()) fail(k, "unknown key");
  }
}

}  // namespace podsight::config
