#include "daemon/systemd_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace sb {
namespace {

TEST(SystemdNotify, SendsTheStateToNotifySocket) {
  auto path = std::filesystem::temp_directory_path() /
              ("sb-notify-" + std::to_string(::getpid()) + ".sock");
  std::filesystem::remove(path);
  int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);

  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  EXPECT_TRUE(systemd_notify("READY=1"));
  ::unsetenv("NOTIFY_SOCKET");

  char buf[64] = {};
  auto n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0), "READY=1");
  ::close(fd);
  std::filesystem::remove(path);
}

TEST(SystemdNotify, DoesNothingWithoutNotifySocket) {
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_TRUE(systemd_notify("READY=1"));
}

TEST(SystemdNotify, ReportsFailureWhenNobodyListens) {
  ::setenv("NOTIFY_SOCKET", "/nonexistent/dir/notify.sock", 1);
  EXPECT_FALSE(systemd_notify("READY=1"));
  ::unsetenv("NOTIFY_SOCKET");
}

}  // namespace
}  // namespace sb
