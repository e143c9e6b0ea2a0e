// Fake Kubernetes API server and test PKI.
#include "support/kube_api.hpp"

#include "support/http_listen.hpp"

#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace podsight::testing {
namespace {

void openssl(const std::string& dir, const std::string& args) {
  const std::string cmd = "cd '" + dir + "' && openssl " + args + " >openssl.log 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    throw std::runtime_error("openssl " + args + " failed: " + TestPki::read(dir + "/openssl.log"));
  }
}

FakeKubeApi::Request recorded(const httplib::Request& req) {
  FakeKubeApi::Request seen;
  seen.method = req.method;
  seen.path = req.path;
  for (const auto& [k, v] : req.params) seen.params[k] = v;
  seen.authorization = req.get_header_value("Authorization");
  return seen;
}

std::string base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) | static_cast<unsigned char>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += k[(v >> s) & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < in.size() ? k[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace

std::string hex_id(const std::string& seed, std::size_t n) {
  std::string out;
  std::size_t h = std::hash<std::string>{}(seed);
  while (out.size() < n) {
    h = h * 6364136223846793005ULL + 1442695040888963407ULL;
    out += "0123456789abcdef"[(h >> 60) & 15];
  }
  return out;
}

std::string uuid(const std::string& seed) {
  std::string h = hex_id(seed, 32);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-4" + h.substr(13, 3) + "-8" + h.substr(17, 3) + "-" +
         h.substr(20, 12);
}

void write_kubeconfig(const std::string& path, int port, const TestPki& pki, const std::string& token) {
  std::ofstream out(path, std::ios::trunc);
  out << "apiVersion: v1\nkind: Config\ncurrent-context: e2e\nclusters:\n- name: test\n  cluster:\n"
      << "    server: https://127.0.0.1:" << port << "\n"
      << "    certificate-authority-data: " << base64(TestPki::read(pki.ca_cert())) << "\n"
      << "contexts:\n- name: e2e\n  context: {cluster: test, user: agent}\n"
      << "users:\n- name: agent\n  user:\n    token: " << token << "\n";
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

std::string TestPki::read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TestPki::TestPki() {
  std::string tmpl = "/tmp/podsight-pki-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  openssl(dir_, "req -x509 " + ec + " -keyout ca.key -out ca.crt -days 2 -subj '/CN=podsight test CA'");
  openssl(dir_,
          "req -x509 " + ec + " -keyout other-ca.key -out other-ca.crt -days 2 -subj '/CN=unrelated CA'");
  std::ofstream(dir_ + "/server.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                         "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n";
  std::ofstream(dir_ + "/client.ext") << "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";
  openssl(dir_, "req -new " + ec + " -keyout server.key -out server.csr -subj '/CN=kube-apiserver'");
  openssl(dir_,
          "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 "
          "-extfile server.ext");
  openssl(dir_, "req -new " + ec + " -keyout client.key -out client.csr -subj '/CN=system:node-agent'");
  openssl(dir_,
          "x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 "
          "-extfile client.ext");
}

TestPki::~TestPki() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

nlohmann::json pod_json(const TestPod& p) {
  using nlohmann::json;
  json containers = json::array();
  json statuses = json::array();
  for (const auto& [name, id] : p.containers) {
    containers.push_back({{"name", name},
                          {"image", "registry.example/" + name + ":1.0"},
                          {"resources", {{"requests", {{"cpu", "100m"}}}}},
                          {"terminationMessagePath", "/dev/termination-log"}});
    json st = {{"name", name},
               {"image", "registry.example/" + name + ":1.0"},
               {"imageID", "registry.example/" + name + "@sha256:" + hex_id(name)},
               {"ready", !id.empty()},
               {"restartCount", 0},
               {"started", !id.empty()}};
    if (id.empty()) {
      st["state"] = {{"waiting", {{"reason", "ContainerCreating"}}}};
    } else {
      st["containerID"] = p.runtime + "://" + id;
      st["state"] = {{"running", {{"startedAt", "2024-05-01T10:00:00Z"}}}};
    }
    statuses.push_back(st);
  }
  json labels = json::object();
  for (const auto& [k, v] : p.labels) labels[k] = v;
  json annotations = {{"kubectl.kubernetes.io/restartedAt", "2024-05-01T09:59:00Z"}};
  if (!p.mirror_uid.empty()) {
    annotations["kubernetes.io/config.mirror"] = p.mirror_uid;
    annotations["kubernetes.io/config.source"] = "file";
  }
  return {
      {"kind", "Pod"},
      {"apiVersion", "v1"},
      {"metadata",
       {{"name", p.name},
        {"generateName", p.name.substr(0, p.name.rfind('-') + 1)},
        {"namespace", p.namespace_},
        {"uid", p.uid},
        {"resourceVersion", "0"},
        {"creationTimestamp", "2024-05-01T09:59:58Z"},
        {"labels", labels},
        {"annotations", annotations},
        {"ownerReferences", json::array({{{"apiVersion", "apps/v1"},
                                          {"kind", "ReplicaSet"},
                                          {"name", p.name.substr(0, p.name.rfind('-'))},
                                          {"uid", hex_id(p.uid, 8)},
                                          {"controller", true},
                                          {"blockOwnerDeletion", true}}})},
        {"managedFields",
         json::array({{{"manager", "kube-controller-manager"},
                       {"operation", "Update"},
                       {"apiVersion", "v1"},
                       {"fieldsType", "FieldsV1"},
                       {"fieldsV1", {{"f:metadata", {{"f:labels", {{".", json::object()}}}}}}}}})}}},
      {"spec",
       {{"containers", containers},
        {"nodeName", p.node},
        {"restartPolicy", "Always"},
        {"serviceAccountName", "default"},
        {"tolerations", json::array({{{"key", "node.kubernetes.io/not-ready"}, {"operator", "Exists"}}})}}},
      {"status",
       {{"phase", "Running"},
        {"hostIP", "192.168.1.10"},
        {"podIP", p.pod_ip},
        {"podIPs", json::array({{{"ip", p.pod_ip}}})},
        {"qosClass", "Burstable"},
        {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})},
        {"containerStatuses", statuses}}}};
}

nlohmann::json service_json(const TestService& s) {
  using nlohmann::json;
  return {
      {"kind", "Service"},
      {"apiVersion", "v1"},
      {"metadata",
       {{"name", s.name},
        {"namespace", s.namespace_},
        {"uid", s.uid},
        {"resourceVersion", "0"},
        {"creationTimestamp", "2024-05-01T09:00:00Z"},
        {"labels", {{"app", s.name}}},
        {"managedFields", json::array({{{"manager", "kubectl-client-side-apply"},
                                        {"operation", "Update"},
                                        {"fieldsType", "FieldsV1"},
                                        {"fieldsV1", {{"f:spec", {{"f:ports", json::object()}}}}}}})}}},
      {"spec",
       {{"clusterIP", s.cluster_ips.empty() ? "" : s.cluster_ips.front()},
        {"clusterIPs", s.cluster_ips},
        {"type", "ClusterIP"},
        {"ipFamilies", json::array({"IPv4"})},
        {"ports",
         json::array({{{"name", "http"}, {"port", s.port}, {"protocol", "TCP"}, {"targetPort", s.port}}})},
        {"selector", {{"app", s.name}}},
        {"sessionAffinity", "None"}}},
      {"status", {{"loadBalancer", json::object()}}}};
}

FakeKubeApi::FakeKubeApi(const TestPki& pki, Options options)
    : options_(std::move(options)), cert_file_(pki.server_cert()), key_file_(pki.server_key()) {
  serve(0);
}

void FakeKubeApi::serve(int port) {
  if (options_.client_ca_file.empty()) {
    server_ = std::make_unique<httplib::SSLServer>(cert_file_.c_str(), key_file_.c_str());
  } else {
    server_ = std::make_unique<httplib::SSLServer>(cert_file_.c_str(), key_file_.c_str(),
                                                   options_.client_ca_file.c_str());
  }
  if (!server_->is_valid()) throw std::runtime_error("SSLServer: certificates not usable");
  for (const char* path : {"/api/v1/pods", "/api/v1/services"}) {
    server_->Get(path, [this](const httplib::Request& req, httplib::Response& res) { handle(&req, &res); });
  }
  // Everything else is recorded too (tests compare what the agent asks for with the chart's RBAC),
  // and answered as an API server answers a resource it does not serve.
  const auto other = [this](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mu_);
    Request seen = recorded(req);
    seen.status = 404;
    requests_.push_back(seen);
    res.status = 404;
    res.set_content(status_body(404, "NotFound", "the server could not find the requested resource"),
                    "application/json");
  };
  server_->Get(".*", other);
  server_->Post(".*", other);
  server_->Put(".*", other);
  server_->Patch(".*", other);
  server_->Delete(".*", other);
  if (port == 0) {
    port_ = server_->bind_to_any_port("127.0.0.1");
  } else {
    port_ = server_->bind_to_port("127.0.0.1", port) ? port : -1;
  }
  if (port_ <= 0) throw std::runtime_error("SSLServer: cannot bind");
  thread_ = listen_in_background(*server_);
}

FakeKubeApi::~FakeKubeApi() { stop_serving(); }

void FakeKubeApi::stop_serving() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  server_->stop();
  thread_.join();
  std::lock_guard lock(mu_);
  stopping_ = false;
  watchers_.clear();
}

void FakeKubeApi::serve_again() {
  if (!thread_.joinable()) serve(port_);
}

std::string FakeKubeApi::event_line(const std::string& type, const nlohmann::json& object) {
  return nlohmann::json{{"type", type}, {"object", object}}.dump() + "\n";
}

std::string FakeKubeApi::status_body(int code, const std::string& reason, const std::string& message) {
  return nlohmann::json{{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", nlohmann::json::object()},
                        {"status", "Failure"}, {"message", message}, {"reason", reason},
                        {"code", code}}
      .dump();
}

bool FakeKubeApi::visible(const Selection& s, const std::string& resource,
                          const nlohmann::json& object) const {
  if (s.resource != resource) return false;
  if (resource != "pods" || s.node.empty()) return true;
  return !options_.honor_field_selector || object["spec"]["nodeName"] == s.node;
}

void FakeKubeApi::broadcast_locked(const std::string& resource, const nlohmann::json& object,
                                   const std::string& line) {
  for (auto& w : watchers_) {
    if (visible(w->selection, resource, object)) w->out.push_back(line);
  }
  cv_.notify_all();
}

void FakeKubeApi::broadcast_locked(const std::string& line) {
  for (auto& w : watchers_) w->out.push_back(line);
  cv_.notify_all();
}

std::uint64_t FakeKubeApi::upsert_locked(const std::string& resource, const nlohmann::json& object) {
  const std::string uid = object["metadata"]["uid"];
  nlohmann::json o = object;
  o["metadata"]["resourceVersion"] = std::to_string(++rv_);
  auto& objects = objects_[resource];
  const std::string type = objects.count(uid) != 0 ? "MODIFIED" : "ADDED";
  objects[uid] = o;
  history_.push_back({rv_, resource, type, o});
  broadcast_locked(resource, o, event_line(type, o));
  return rv_;
}

std::uint64_t FakeKubeApi::remove_locked(const std::string& resource, const std::string& uid) {
  auto& objects = objects_[resource];
  auto it = objects.find(uid);
  if (it == objects.end()) return rv_;
  nlohmann::json o = it->second;
  objects.erase(it);
  o["metadata"]["resourceVersion"] = std::to_string(++rv_);
  history_.push_back({rv_, resource, "DELETED", o});
  broadcast_locked(resource, o, event_line("DELETED", o));
  return rv_;
}

std::uint64_t FakeKubeApi::upsert(const nlohmann::json& pod) {
  std::lock_guard lock(mu_);
  return upsert_locked("pods", pod);
}

std::uint64_t FakeKubeApi::remove(const std::string& uid) {
  std::lock_guard lock(mu_);
  return remove_locked("pods", uid);
}

std::uint64_t FakeKubeApi::upsert_service(const nlohmann::json& service) {
  std::lock_guard lock(mu_);
  return upsert_locked("services", service);
}

std::uint64_t FakeKubeApi::remove_service(const std::string& uid) {
  std::lock_guard lock(mu_);
  return remove_locked("services", uid);
}

void FakeKubeApi::bookmark() {
  std::lock_guard lock(mu_);
  ++rv_;  // bookmarks carry a version newer than any event the watcher got
  broadcast_locked(event_line("BOOKMARK", {{"kind", "Pod"},
                                           {"apiVersion", "v1"},
                                           {"metadata", {{"resourceVersion", std::to_string(rv_)}}},
                                           {"spec", {{"containers", nullptr}}},
                                           {"status", nlohmann::json::object()}}));
}

void FakeKubeApi::compact(bool notify) {
  std::lock_guard lock(mu_);
  compacted_rv_ = ++rv_;
  history_.clear();
  if (!notify) return;
  const auto line = event_line(
      "ERROR",
      nlohmann::json::parse(status_body(
          410, "Expired", "too old resource version: compacted at " + std::to_string(compacted_rv_))));
  broadcast_locked(line);
  for (auto& w : watchers_) w->end = true;
}

void FakeKubeApi::push_raw(const std::string& bytes) {
  std::lock_guard lock(mu_);
  broadcast_locked(bytes);
}

void FakeKubeApi::drop_watches() {
  std::lock_guard lock(mu_);
  for (auto& w : watchers_) w->drop = true;
  cv_.notify_all();
}

void FakeKubeApi::end_watches() {
  std::lock_guard lock(mu_);
  for (auto& w : watchers_) w->end = true;
  cv_.notify_all();
}

void FakeKubeApi::set_token(const std::string& token) {
  std::lock_guard lock(mu_);
  options_.token = token;
}

void FakeKubeApi::fail_next(int status, int count) {
  std::lock_guard lock(mu_);
  fail_status_ = status;
  fail_count_ = count;
}

void FakeKubeApi::set_list_body(std::optional<std::string> body) {
  std::lock_guard lock(mu_);
  list_body_ = std::move(body);
}

void FakeKubeApi::expire_continue_tokens(bool expire) {
  std::lock_guard lock(mu_);
  expire_continue_ = expire;
}

std::vector<FakeKubeApi::Request> FakeKubeApi::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

std::size_t FakeKubeApi::count(bool watch) const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& r : requests_) n += r.watch == watch ? 1 : 0;
  return n;
}

std::uint64_t FakeKubeApi::resource_version() const {
  std::lock_guard lock(mu_);
  return rv_;
}

std::size_t FakeKubeApi::open_watches() const {
  std::lock_guard lock(mu_);
  return watchers_.size();
}

void FakeKubeApi::handle(const void* request, void* response) {
  const auto& req = *static_cast<const httplib::Request*>(request);
  auto& res = *static_cast<httplib::Response*>(response);
  std::unique_lock lock(mu_);
  Request seen = recorded(req);
  // Looking a parameter up must not add it: the recorded requests show exactly what was sent.
  auto param = [&](const std::string& name) {
    auto it = seen.params.find(name);
    return it == seen.params.end() ? std::string() : it->second;
  };
  seen.watch = param("watch") == "1" || param("watch") == "true";
  auto answer = [&](int status, const std::string& reason, const std::string& message) {
    seen.status = status;
    requests_.push_back(seen);
    res.status = status;
    res.set_content(status_body(status, reason, message), "application/json");
  };
  if (options_.client_ca_file.empty() && seen.authorization != "Bearer " + options_.token) {
    return answer(401, "Unauthorized", "Unauthorized");
  }
  if (fail_count_ > 0) {
    --fail_count_;
    return answer(fail_status_, "InternalError", "scripted failure");
  }
  Selection selection{req.path == "/api/v1/services" ? "services" : "pods", ""};
  if (selection.resource == "pods" && !param("fieldSelector").empty()) {
    if (param("fieldSelector") != "spec.nodeName=" + options_.node) {
      return answer(400, "BadRequest", "this test server only serves spec.nodeName=" + options_.node);
    }
    selection.node = options_.node;
  } else if (!param("fieldSelector").empty()) {
    return answer(400, "BadRequest", "this test server serves services without a field selector");
  }

  if (!seen.watch) {
    if (list_body_) {
      seen.status = 200;
      requests_.push_back(seen);
      res.set_content(*list_body_, "application/json");
      return;
    }
    std::vector<nlohmann::json> items;
    for (const auto& [uid, o] : objects_[selection.resource]) {
      if (visible(selection, selection.resource, o)) items.push_back(o);
    }
    std::size_t offset = 0;
    if (const auto c = param("continue"); !c.empty()) {
      if (expire_continue_) return answer(410, "Expired", "The provided continue parameter is too old");
      offset = std::stoul(c.substr(c.find(':') + 1));
    }
    const std::size_t limit = param("limit").empty() ? items.size() : std::stoul(param("limit"));
    nlohmann::json list = {{"kind", selection.resource == "pods" ? "PodList" : "ServiceList"},
                           {"apiVersion", "v1"},
                           {"metadata", {{"resourceVersion", std::to_string(rv_)}}},
                           {"items", nlohmann::json::array()}};
    for (std::size_t i = offset; i < items.size() && i < offset + limit; ++i)
      list["items"].push_back(items[i]);
    if (offset + limit < items.size())
      list["metadata"]["continue"] = "offset:" + std::to_string(offset + limit);
    seen.status = 200;
    requests_.push_back(seen);
    res.set_content(list.dump(), "application/json");
    return;
  }

  // Watch: replay the history after the version asked for, then stream what happens.
  auto w = std::make_shared<Watcher>();
  w->selection = selection;
  const std::string from = param("resourceVersion");
  const std::uint64_t from_rv = from.empty() || from == "0" ? rv_ : std::stoull(from);
  if (from_rv < compacted_rv_) {
    if (options_.gone_as_http_status) return answer(410, "Expired", "too old resource version");
    w->out.push_back(
        event_line("ERROR", nlohmann::json::parse(status_body(410, "Expired", "too old resource version"))));
    w->end = true;
  } else {
    for (const auto& e : history_) {
      if (e.rv > from_rv && visible(selection, e.resource, e.object))
        w->out.push_back(event_line(e.type, e.object));
    }
  }
  // One client, one watch per selection: an older stream still open belongs to a client that gave up
  // on it.
  for (auto& old : watchers_) {
    if (old->selection == selection) old->drop = true;
  }
  watchers_.push_back(w);
  cv_.notify_all();
  seen.status = 200;
  requests_.push_back(seen);
  lock.unlock();
  res.set_chunked_content_provider(
      "application/json",
      [this, w](std::size_t, httplib::DataSink& sink) {
        std::unique_lock l(mu_);
        cv_.wait_for(l, std::chrono::milliseconds(100),
                     [&] { return stopping_ || w->drop || w->end || !w->out.empty(); });
        if (stopping_ || w->drop) return false;  // no terminating chunk: the stream is cut
        while (!w->out.empty()) {
          std::string piece = std::move(w->out.front());
          w->out.pop_front();
          l.unlock();
          const bool ok = sink.write(piece.data(), piece.size());
          l.lock();
          if (!ok) return false;
        }
        if (w->end) sink.done();
        return true;
      },
      [this, w](bool) {
        std::lock_guard l(mu_);
        std::erase(watchers_, w);
      });
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace podsight::testing
