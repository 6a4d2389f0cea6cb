#include "store/store.h"

#include <array>
#include <utility>

namespace sb {

namespace {

// The names are the values stored in the database (see the CHECK constraints in
// migrations.cpp); changing one needs a migration.
constexpr std::array<std::pair<TaskStatus, std::string_view>, 4> kTaskStatusNames{{
    {TaskStatus::active, "active"},
    {TaskStatus::paused, "paused"},
    {TaskStatus::completed, "completed"},
    {TaskStatus::cancelled, "cancelled"},
}};

constexpr std::array<std::pair<ContextMode, std::string_view>, 2> kContextModeNames{{
    {ContextMode::group, "group"},
    {ContextMode::isolated, "isolated"},
}};

constexpr std::array<std::pair<OutboxState, std::string_view>, 4> kOutboxStateNames{{
    {OutboxState::pending, "pending"},
    {OutboxState::sending, "sending"},
    {OutboxState::sent, "sent"},
    {OutboxState::failed, "failed"},
}};

template <typename Enum, std::size_t N>
std::string_view name_of(const std::array<std::pair<Enum, std::string_view>, N>& names,
                         Enum value) {
  for (const auto& [candidate, name] : names) {
    if (candidate == value) return name;
  }
  return "unknown";
}

template <typename Enum, std::size_t N>
std::optional<Enum> value_of(const std::array<std::pair<Enum, std::string_view>, N>& names,
                             std::string_view text) {
  for (const auto& [value, name] : names) {
    if (name == text) return value;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(TaskStatus status) { return name_of(kTaskStatusNames, status); }
std::optional<TaskStatus> parse_task_status(std::string_view text) {
  return value_of(kTaskStatusNames, text);
}

std::string_view to_string(ContextMode mode) { return name_of(kContextModeNames, mode); }
std::optional<ContextMode> parse_context_mode(std::string_view text) {
  return value_of(kContextModeNames, text);
}

std::string_view to_string(OutboxState state) { return name_of(kOutboxStateNames, state); }
std::optional<OutboxState> parse_outbox_state(std::string_view text) {
  return value_of(kOutboxStateNames, text);
}

}  // namespace sb
