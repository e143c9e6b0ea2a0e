// Test certificates made at test time with the openssl command-line tool (package openssl): a CA and
// server certificates it signs for 127.0.0.1, so that TLS clients can verify what the agent serves.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace podsight::testing {

// Runs argv (no shell) with stdout and stderr to /dev/null; throws when it does not exit 0.
inline void run_openssl(std::vector<std::string> argv) {
  argv.insert(argv.begin(), "openssl");
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "openssl", &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  if (rc != 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    throw std::runtime_error("failed: " + cmd);
  }
}

struct CertificateFiles {
  std::string cert;  // PEM
  std::string key;   // PEM
};

// A CA (self-signed) in dir/<name>-ca.{crt,key}.
inline CertificateFiles make_ca(const std::string& dir, const std::string& name) {
  CertificateFiles ca{dir + "/" + name + "-ca.crt", dir + "/" + name + "-ca.key"};
  run_openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days",
               "2", "-subj", "/CN=" + name + " test CA", "-keyout", ca.key, "-out", ca.cert});
  return ca;
}

// A server certificate for 127.0.0.1 and localhost, signed by `ca`, valid for `days`, common name `cn`,
// in dir/<cn>.{crt,key}.
inline CertificateFiles make_server_certificate(const std::string& dir, const CertificateFiles& ca,
                                                const std::string& cn, int days = 2) {
  CertificateFiles out{dir + "/" + cn + ".crt", dir + "/" + cn + ".key"};
  const std::string csr = dir + "/" + cn + ".csr";
  const std::string ext = dir + "/" + cn + ".ext";
  std::ofstream(ext) << "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
  run_openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
               "/CN=" + cn, "-keyout", out.key, "-out", csr});
  run_openssl({"x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-days",
               std::to_string(days), "-extfile", ext, "-out", out.cert});
  return out;
}

inline std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Replaces `to` with a copy of `from` by rename(2), the way a Secret volume or cert-manager swaps files.
inline void replace_file(const std::string& from, const std::string& to) {
  const std::string tmp = to + ".new";
  std::ofstream(tmp, std::ios::binary | std::ios::trunc) << file_text(from);
  if (std::rename(tmp.c_str(), to.c_str()) != 0) throw std::runtime_error("rename " + tmp);
}

}  // namespace podsight::testing
