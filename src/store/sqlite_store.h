#pragma once
// Details of the SQLite store that tests and diagnostics need; everything else is behind
// open_sqlite_store() in store.h.

#include <span>
#include <string>
#include <string_view>

#include "common/message.h"

namespace sb {

// The SQL text that SqliteStore::messages() prepares for `query`'s shape (which filters are
// set and the order). Its parameters are numbered in the order chat, since, before, limit,
// for those present. For EXPLAIN QUERY PLAN in tests and when investigating a slow query.
std::string sqlite_message_query_sql(const MessageQuery& query);

// The SQL of the other queries the daemon runs often or over big tables (pending_messages,
// due_tasks, due_outbox, ...), each named after the Store method that prepares it, exactly
// as prepared. For EXPLAIN QUERY PLAN in tests.
struct NamedSql {
  std::string_view name;
  std::string_view sql;
};
std::span<const NamedSql> sqlite_named_queries();

}  // namespace sb
