// TLS server context: built from PEM files with OpenSSL, swapped for a new one when the files change.
#include "http/tls.hpp"

#include "log/log.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509err.h>

#include <cstring>
#include <ctime>
#include <string_view>

namespace podsight::http {
namespace {

// OpenSSL's error queue (per thread) as one line, emptied.
std::string openssl_errors() {
  std::string out;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

// Picks http/1.1 when the client offers it (the only protocol we speak); without a match the handshake
// goes on without ALPN, which clients treat as HTTP/1.1. `in` is the client's length-prefixed list.
int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* /*arg*/) {
  constexpr std::string_view kHttp11 = "http/1.1";
  for (unsigned int i = 0; i < inlen;) {
    const unsigned int len = in[i];
    if (len == 0 || i + 1 + len > inlen) break;
    if (std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == kHttp11) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

Result<TlsContext::Loaded> TlsContext::load(const TlsOptions& options) {
  ERR_clear_error();
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) return Error{"create TLS context: " + openssl_errors(), {}, 0};
  const int min = options.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx.get(), min) != 1) {
    return Error{"set minimum TLS version: " + openssl_errors(), options.min_version, 0};
  }
  // No renegotiation (a DoS lever), no compression (CRIME); the server's cipher order; a client that
  // closes without close_notify is just a closed connection, as for plain HTTP.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // The connection's send loop may resume a write with the rest of a buffer, as with send().
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_alpn_select_cb(ctx.get(), select_alpn, nullptr);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), options.cert_file.c_str()) != 1) {
    return Error{"cannot use TLS certificate: " + openssl_errors(), options.cert_file, 0};
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    // The usual case mid-rotation, said plainly: the new certificate came before its key, or after.
    if (ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH) {
      return Error{"TLS private key does not match the certificate: " + openssl_errors(),
                   options.key_file + " / " + options.cert_file, 0};
    }
    return Error{"cannot use TLS private key: " + openssl_errors(), options.key_file, 0};
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return Error{"TLS private key does not match the certificate: " + openssl_errors(),
                 options.key_file + " / " + options.cert_file, 0};
  }
  Loaded loaded{ctx, 0};
  if (const X509* cert = SSL_CTX_get0_certificate(ctx.get()); cert != nullptr) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) loaded.not_after = timegm(&tm);
  }
  return loaded;
}

TlsContext::TlsContext(TlsOptions options, ReloadObserver observer)
    : options_(std::move(options)),
      observer_(std::move(observer)),
      watch_({options_.cert_file, options_.key_file}) {}

Result<std::unique_ptr<TlsContext>> TlsContext::create(const TlsOptions& options, ReloadObserver observer) {
  std::unique_ptr<TlsContext> tls(new TlsContext(options, std::move(observer)));
  tls->watch_.remember();
  auto loaded = load(options);
  if (!loaded) return loaded.error();
  tls->loaded_ = std::move(*loaded);
  return tls;
}

std::shared_ptr<SSL_CTX> TlsContext::current() {
  if (watch_.changed()) {
    // Only the thread that saw the change gets here; the others keep using the context in use meanwhile.
    auto next = load(options_);
    SecretReload event{"tls_certificate", next.ok(), next ? std::string() : next.error().message()};
    if (next) {
      log::info("TLS certificate reloaded",
                {{"cert_file", options_.cert_file}, {"not_after", next->not_after}});
      std::lock_guard lock(mu_);
      loaded_ = std::move(*next);
    } else {
      log::error("TLS certificate reload failed, serving the previous one", {{"error", event.error}});
    }
    if (observer_) observer_(event);
  }
  std::lock_guard lock(mu_);
  return loaded_.ctx;
}

std::int64_t TlsContext::not_after() const {
  std::lock_guard lock(mu_);
  return loaded_.not_after;
}

}  // namespace podsight::http
