#pragma once
// sd_notify(3) without libsystemd: tells systemd (Type=notify) that the daemon is ready or
// stopping. Does nothing when NOTIFY_SOCKET is not set.

#include <string_view>

namespace sb {

// Sends `state` ("READY=1", "STOPPING=1", "STATUS=...") to $NOTIFY_SOCKET. Returns false if
// the variable is set but sending failed.
bool systemd_notify(std::string_view state);

}  // namespace sb
