// A Kubernetes API server for tests: speaks the real list/watch protocol (paged lists with continue
// tokens, chunked watch streams, bookmarks, 410 Gone, metav1.Status errors) for pods (one node's, or
// the cluster's) and services over TLS with a bearer token, in the test process (cpp-httplib's
// SSLServer). Certificates are made at test time with the openssl CLI. Scripted faults: dropped and
// truncated streams, malformed bytes, error statuses.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Server;
}

namespace podsight::testing {

// A CA, a server certificate it signed (SAN IP:127.0.0.1, DNS:localhost), a client certificate it
// signed, and an unrelated CA. Files in a temporary directory removed on destruction.
class TestPki {
 public:
  TestPki();
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] std::string ca_cert() const { return dir_ + "/ca.crt"; }
  [[nodiscard]] std::string server_cert() const { return dir_ + "/server.crt"; }
  [[nodiscard]] std::string server_key() const { return dir_ + "/server.key"; }
  [[nodiscard]] std::string client_cert() const { return dir_ + "/client.crt"; }
  [[nodiscard]] std::string client_key() const { return dir_ + "/client.key"; }
  [[nodiscard]] std::string other_ca_cert() const { return dir_ + "/other-ca.crt"; }
  [[nodiscard]] static std::string read(const std::string& path);

 private:
  std::string dir_;
};

// Lower-case hex digits (64: a container ID) and a version-4-shaped UUID (a pod UID), the same for
// the same seed.
std::string hex_id(const std::string& seed, std::size_t n = 64);
std::string uuid(const std::string& seed);

// Writes a kubeconfig (YAML, current context "e2e") for https://127.0.0.1:`port` with the PKI's CA
// inline (certificate-authority-data) and a bearer token.
void write_kubeconfig(const std::string& path, int port, const TestPki& pki, const std::string& token);

// A pod as the test wants it; pod_json() makes the full object an API server would send (with
// managedFields, spec, status and the fields podsight does not read).
struct TestPod {
  std::string namespace_ = "default";
  std::string name;
  std::string uid;
  std::string node = "node-a";
  std::vector<std::pair<std::string, std::string>>
      containers;  // name, 64-hex container ID ("" = not started)
  std::map<std::string, std::string> labels;
  std::string runtime = "containerd";
  std::string pod_ip = "10.244.0.7";
  std::string mirror_uid;  // static pods
};
nlohmann::json pod_json(const TestPod& p);

// A service as the test wants it; service_json() makes the full object.
struct TestService {
  std::string namespace_ = "default";
  std::string name;
  std::string uid;
  std::vector<std::string> cluster_ips;  // spec.clusterIPs; {"None"} for a headless service
  int port = 80;
};
nlohmann::json service_json(const TestService& s);

class FakeKubeApi {
 public:
  struct Options {
    std::string token = "test-token";
    std::string node = "node-a";
    bool honor_field_selector = true;  // false: answer with every pod, like a broken proxy
    std::string client_ca_file;        // set: TLS client certificates required (no token check)
    bool gone_as_http_status = false;  // a watch from a compacted version: HTTP 410 instead of an ERROR event
  };

  FakeKubeApi(const TestPki& pki, Options options);
  ~FakeKubeApi();
  FakeKubeApi(const FakeKubeApi&) = delete;
  FakeKubeApi& operator=(const FakeKubeApi&) = delete;

  [[nodiscard]] int port() const { return port_; }

  // Changes the cluster: ADDED/MODIFIED (by uid) and DELETED events. Return the new resourceVersion.
  std::uint64_t upsert(const nlohmann::json& pod);
  std::uint64_t remove(const std::string& uid);
  std::uint64_t upsert_service(const nlohmann::json& service);
  std::uint64_t remove_service(const std::string& uid);
  // A BOOKMARK at the current resourceVersion to every open watch.
  void bookmark();
  // Forgets the event history up to now: a watch from any version seen so far gets 410. With
  // `notify`, open watches get an ERROR 410 event and end; without, they go on undisturbed.
  void compact(bool notify = true);
  // Bytes sent as they are to every open watch (partial lines, malformed JSON).
  void push_raw(const std::string& bytes);
  // Cuts every open watch without the terminating chunk / ends it cleanly.
  void drop_watches();
  void end_watches();

  // An API server restart: stop_serving() cuts every open watch and closes the port (clients get
  // "connection refused"); serve_again() listens on the same port. What the cluster holds (pods,
  // services, history, resourceVersion) survives, as it does in etcd; changes made in between are
  // in the history a watch replays.
  void stop_serving();
  void serve_again();

  void set_token(const std::string& token);
  // The next `count` requests (list or watch) are answered with `status` and a metav1.Status body.
  void fail_next(int status, int count = 1);
  // Lists answer with this body instead of the real list (nullopt: back to normal).
  void set_list_body(std::optional<std::string> body);
  // Continue tokens are refused with 410 Expired.
  void expire_continue_tokens(bool expire);

  struct Request {
    std::string method;  // GET, POST, ...
    std::string path;    // without the query, e.g. /api/v1/pods or /api/v1/services
    bool watch = false;
    std::map<std::string, std::string> params;
    std::string authorization;
    int status = 0;
  };
  [[nodiscard]] std::vector<Request> requests() const;
  [[nodiscard]] std::size_t count(bool watch) const;
  [[nodiscard]] std::uint64_t resource_version() const;
  [[nodiscard]] std::size_t open_watches() const;

 private:
  // What a list or watch asks for: pods or services, and for pods one node's ("" for all).
  struct Selection {
    std::string resource;
    std::string node;
    bool operator==(const Selection&) const = default;
  };
  struct Watcher {
    Selection selection;
    std::deque<std::string> out;
    bool drop = false;
    bool end = false;
  };
  struct Event {
    std::uint64_t rv;
    std::string resource;
    std::string type;
    nlohmann::json object;
  };

  void serve(int port);  // builds the TLS server, binds `port` (0: any) and starts its thread
  void handle(const void* req, void* res);
  [[nodiscard]] bool visible(const Selection& s, const std::string& resource,
                             const nlohmann::json& object) const;
  std::uint64_t upsert_locked(const std::string& resource, const nlohmann::json& object);
  std::uint64_t remove_locked(const std::string& resource, const std::string& uid);
  void broadcast_locked(const std::string& resource, const nlohmann::json& object, const std::string& line);
  void broadcast_locked(const std::string& line);
  static std::string event_line(const std::string& type, const nlohmann::json& object);
  static std::string status_body(int code, const std::string& reason, const std::string& message);

  Options options_;
  std::string cert_file_, key_file_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::uint64_t rv_ = 100;
  std::uint64_t compacted_rv_ = 0;
  std::map<std::string, std::map<std::string, nlohmann::json>> objects_;  // resource -> uid -> object
  std::vector<Event> history_;
  std::vector<std::shared_ptr<Watcher>> watchers_;
  std::vector<Request> requests_;
  int fail_status_ = 0;
  int fail_count_ = 0;
  std::optional<std::string> list_body_;
  bool expire_continue_ = false;
};

// Polls `pred` until it holds or `timeout` passes; returns the last result (a wait, not a timing check).
bool eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(15));

}  // namespace podsight::testing
