#pragma once
// Details of the SQLite store that tests and diagnostics need; everything else is behind
// open_sqlite_store() in store.h.

#include <string>

#include "common/message.h"

namespace sb {

// The SQL text that SqliteStore::messages() prepares for `query`'s shape (which filters are
// set and the order). Its parameters are numbered in the order chat, since, before, limit,
// for those present. For EXPLAIN QUERY PLAN in tests and when investigating a slow query.
std::string sqlite_message_query_sql(const MessageQuery& query);

}  // namespace sb
