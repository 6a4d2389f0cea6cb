#pragma once
// A second, plain SQLite connection to a store's database: another process as far as the
// store knows. For tests that look under the store (schema, query plans, raw rows) or write
// behind its back. Throws std::runtime_error on any failure.

#include <sqlite3.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace sb::test {

class RawDb {
 public:
  explicit RawDb(const std::filesystem::path& file) {
    if (sqlite3_open(file.c_str(), &db_) != SQLITE_OK) {
      const std::string message = sqlite3_errmsg(db_);
      sqlite3_close(db_);
      throw std::runtime_error(file.string() + ": " + message);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      std::string message = error ? error : "?";
      sqlite3_free(error);
      throw std::runtime_error(sql + ": " + message);
    }
  }

  // Column `column` of every row of `sql`, as text ("NULL" for NULL).
  std::vector<std::string> rows(const std::string& sql, int column = 0) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    }
    std::vector<std::string> out;
    while (sqlite3_step(statement) == SQLITE_ROW) {
      const auto* text = sqlite3_column_text(statement, column);
      out.emplace_back(text ? reinterpret_cast<const char*>(text) : "NULL");
    }
    sqlite3_finalize(statement);
    return out;
  }
  std::string scalar(const std::string& sql) { return rows(sql).at(0); }

  // The EXPLAIN QUERY PLAN of `sql`, one line per step ("SEARCH m USING INDEX ...").
  std::string plan(const std::string& sql) {
    std::string out;
    for (const auto& line : rows("EXPLAIN QUERY PLAN " + sql, 3)) out += line + "\n";
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace sb::test
