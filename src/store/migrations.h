#pragma once
// The SQLite schema as an ordered list of migrations. open_sqlite_store() applies, in one
// transaction, every migration whose version is above the database's `PRAGMA user_version`
// and then sets user_version to the last one applied.
//
// Rules for adding one: append, never edit a released entry; versions are 1, 2, 3, ... with
// no gaps; a migration is plain SQL (several statements are fine) and must not open or end
// a transaction itself.

#include <span>
#include <string_view>

namespace sb {

struct SqliteMigration {
  int version;
  std::string_view sql;
};

// All migrations, in ascending version order.
std::span<const SqliteMigration> sqlite_migrations();

// The schema version this binary creates and understands: the last migration's version.
int sqlite_schema_version();

}  // namespace sb
