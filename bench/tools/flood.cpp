// UDP flood for the XDP throughput benchmark: sends datagrams as fast as one socket can for a fixed
// time (sendmmsg batches), from wherever it is started (bench/run.sh starts it in a netns).
#include "common.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace podsight::bench {

// --dst IPv4 --port P --seconds S --payload B --batch K
int flood_udp(const Args& a) {
  const std::string dst = a.required("dst");
  const auto port = static_cast<std::uint16_t>(a.num("port", 9));
  const double seconds = a.real("seconds", 2.0);
  const auto payload = static_cast<std::size_t>(a.num("payload", 64));
  const auto batch = static_cast<unsigned>(a.num("batch", 64));

  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, dst.c_str(), &addr.sin_addr) != 1) throw std::invalid_argument("bad --dst " + dst);
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
  }
  std::vector<char> data(payload, 'p');
  std::vector<iovec> iov(batch);
  std::vector<mmsghdr> msgs(batch);
  for (unsigned i = 0; i < batch; ++i) {
    iov[i] = {data.data(), data.size()};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  std::uint64_t sent = 0;
  std::uint64_t errors = 0;
  const double t0 = now_seconds();
  double t = t0;
  while (t - t0 < seconds) {
    for (int k = 0; k < 16; ++k) {  // look at the clock every 16 batches
      int n = ::sendmmsg(s, msgs.data(), batch, 0);
      if (n > 0) {
        sent += static_cast<std::uint64_t>(n);
      } else {
        ++errors;  // ENOBUFS and the like: the queue is full, which is what saturation means
      }
    }
    t = now_seconds();
  }
  ::close(s);
  emit({{"sent", sent}, {"seconds", t - t0}, {"send_errors", errors}});
  return 0;
}

}  // namespace podsight::bench
