#include "channels/email/attachments.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <optional>
#include <random>
#include <utility>

#include "channels/email/mail_text.h"
#include "common/safe_files.h"

namespace sb::email {
namespace {

constexpr std::size_t kMaxNameBytes = 100;
constexpr std::size_t kMaxExtensionBytes = 10;  // with the dot
constexpr int kNumberedAttempts = 100;
constexpr char kFolder[] = "attachments";

std::string errno_text(int error) { return std::strerror(error); }

// Decodes the UTF-8 code point at s[i] (s is valid UTF-8); sets `length`.
char32_t code_point_at(std::string_view s, std::size_t i, std::size_t& length) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    length = 1;
    return b0;
  }
  length = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
  char32_t cp = b0 & (0xFF >> (length + 1));
  for (std::size_t k = 1; k < length && i + k < s.size(); ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  }
  return cp;
}

// Characters a reader cannot see or that change how the rest of the name is displayed
// ("invoice\u202Efdp.exe" shows as "invoiceexe.pdf").
bool is_invisible_or_control(char32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0x200B && cp <= 0x200F) ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF;
}

bool is_special(char32_t cp) {
  return cp == '<' || cp == '>' || cp == ':' || cp == '"' || cp == '|' || cp == '?' || cp == '*';
}

std::string extension_for(std::string_view content_type) {
  static constexpr std::pair<std::string_view, std::string_view> kExtensions[] = {
      {"application/pdf", ".pdf"},
      {"application/zip", ".zip"},
      {"application/json", ".json"},
      {"application/msword", ".doc"},
      {"application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx"},
      {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx"},
      {"application/vnd.openxmlformats-officedocument.presentationml.presentation", ".pptx"},
      {"application/vnd.ms-excel", ".xls"},
      {"application/pgp-signature", ".asc"},
      {"application/pkcs7-signature", ".p7s"},
      {"application/ms-tnef", ".dat"},
      {"image/png", ".png"},
      {"image/jpeg", ".jpg"},
      {"image/gif", ".gif"},
      {"image/webp", ".webp"},
      {"image/svg+xml", ".svg"},
      {"image/heic", ".heic"},
      {"audio/mpeg", ".mp3"},
      {"video/mp4", ".mp4"},
      {"text/plain", ".txt"},
      {"text/html", ".html"},
      {"text/csv", ".csv"},
      {"text/calendar", ".ics"},
      {"text/vcard", ".vcf"},
      {"text/x-vcard", ".vcf"},
      {"text/rfc822-headers", ".txt"},
      {"message/rfc822", ".eml"},
      {"message/delivery-status", ".txt"},
  };
  const std::string type = ascii_lower(content_type);
  for (const auto& [known, extension] : kExtensions) {
    if (type == known) return std::string(extension);
  }
  return ".bin";
}

// The extension of a file name (".pdf"), if it looks like one: short, ASCII letters and digits.
std::string_view extension_of(std::string_view name) {
  const std::size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return {};
  const std::string_view extension = name.substr(dot);
  if (extension.size() < 2 || extension.size() > kMaxExtensionBytes) return {};
  for (char c : extension.substr(1)) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum) return {};
  }
  return extension;
}

std::string numbered(std::string_view name, std::string_view suffix) {
  const std::string_view extension = extension_of(name);
  const std::string_view base = name.substr(0, name.size() - extension.size());
  return std::string(base) + "-" + std::string(suffix) + std::string(extension);
}

std::string random_suffix() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device random;
  std::string suffix;
  for (int i = 0; i < 4; ++i) {
    const unsigned value = random();
    suffix += kHex[value & 15];
    suffix += kHex[(value >> 4) & 15];
  }
  return suffix;
}

Result<void> write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t written = ::write(fd, data.data(), data.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return make_error(errno_text(errno));
    }
    data.remove_prefix(static_cast<std::size_t>(written));
  }
  if (::fsync(fd) != 0) return make_error(errno_text(errno));
  return {};
}

// Creates a file with `name`, or a numbered variant when taken; returns the name used.
Result<std::pair<std::string, int>> claim_name(int dir_fd, const std::string& name,
                                               const std::filesystem::path& dir) {
  std::string candidate = name;
  for (int attempt = 1;; ++attempt) {
    const int fd = ::openat(dir_fd, candidate.c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) return std::pair{candidate, fd};
    if (errno != EEXIST) {
      return make_error("cannot create " + (dir / candidate).string() + ": " + errno_text(errno));
    }
    if (attempt > kNumberedAttempts + 10) {
      return make_error("cannot find a free name for " + (dir / name).string());
    }
    candidate = attempt < kNumberedAttempts ? numbered(name, std::to_string(attempt + 1))
                                            : numbered(name, random_suffix());
  }
}

}  // namespace

std::string safe_filename(std::string_view name, std::string_view content_type) {
  const std::string utf8 = to_valid_utf8(name);
  std::string_view last = utf8;
  if (const std::size_t slash = last.find_last_of("/\\"); slash != std::string_view::npos) {
    last.remove_prefix(slash + 1);
  }
  std::string cleaned;
  bool pending_space = false;
  for (std::size_t i = 0; i < last.size();) {
    std::size_t length = 1;
    const char32_t cp = code_point_at(last, i, length);
    const std::string_view bytes = last.substr(i, length);
    i += length;
    if (cp == ' ' || cp == '\t' || cp == 0xA0) {
      pending_space = true;
      continue;
    }
    if (is_invisible_or_control(cp)) continue;
    if (pending_space && !cleaned.empty()) cleaned += ' ';
    pending_space = false;
    if (is_special(cp)) {
      cleaned += '_';
    } else {
      cleaned.append(bytes);
    }
  }
  // Leading dots hide the file (and "." / ".." name directories); trailing ones and spaces
  // are dropped by Windows when the file is copied there.
  const std::size_t first = cleaned.find_first_not_of(". ");
  cleaned.erase(0, first == std::string::npos ? cleaned.size() : first);
  while (!cleaned.empty() && (cleaned.back() == '.' || cleaned.back() == ' ')) cleaned.pop_back();

  std::string extension(extension_of(cleaned));
  std::string base = cleaned.substr(0, cleaned.size() - extension.size());
  if (base.empty()) {
    if (extension.empty()) extension = extension_for(content_type);
    return "attachment" + extension;
  }
  base = std::string(utf8_prefix(base, kMaxNameBytes - extension.size()));
  while (!base.empty() && base.back() == ' ') base.pop_back();
  return base + extension;
}

Result<std::vector<SavedAttachment>> save_attachments(
    const std::filesystem::path& group_folder, const std::vector<ParsedAttachment>& attachments) {
  std::vector<SavedAttachment> saved;
  saved.reserve(attachments.size());
  const std::filesystem::path dir = group_folder / kFolder;
  std::optional<SafeDir> dir_fd;
  std::vector<std::string> created;
  auto fail = [&](std::string message) -> Result<std::vector<SavedAttachment>> {
    for (const std::string& name : created) ::unlinkat(dir_fd->fd(), name.c_str(), 0);
    return make_error(std::move(message));
  };

  for (const ParsedAttachment& attachment : attachments) {
    SavedAttachment entry;
    entry.name = safe_filename(attachment.filename, attachment.content_type);
    entry.content_type = single_line(attachment.content_type, 255);
    if (entry.content_type.empty()) entry.content_type = "application/octet-stream";
    entry.size = attachment.skipped.empty() ? attachment.data.size() : attachment.size;
    entry.skipped = single_line(attachment.skipped, 255);
    if (!attachment.skipped.empty()) {
      saved.push_back(std::move(entry));
      continue;
    }
    if (!dir_fd) {
      // The agent can write the group folder and could plant a symbolic link anywhere in
      // it: the folder is opened from data_dir/groups (the host's) without following one,
      // and attachments/ relative to it.
      auto opened = SafeDir::open(group_folder.parent_path(), group_folder.filename());
      if (!opened) return make_error("cannot open the group folder: " + opened.error().message);
      auto attachments_dir = opened->open_dir(kFolder, MissingDirs::create);
      if (!attachments_dir) return attachments_dir.error();
      dir_fd.emplace(std::move(attachments_dir).value());
    }
    auto claimed = claim_name(dir_fd->fd(), entry.name, dir);
    if (!claimed) return fail(claimed.error().message);
    auto [name, raw_fd] = std::move(claimed.value());
    UniqueFd file(raw_fd);
    created.push_back(name);
    if (auto written = write_all(file.get(), attachment.data); !written) {
      return fail("cannot write " + (dir / name).string() + ": " + written.error().message);
    }
    if (file.close() != 0) {
      return fail("cannot write " + (dir / name).string() + ": " + errno_text(errno));
    }
    entry.path = std::string(kFolder) + "/" + name;
    saved.push_back(std::move(entry));
  }
  if (dir_fd) {
    if (auto synced = dir_fd->sync(); !synced) return fail(synced.error().message);
  }
  return saved;
}

std::string describe_attachments(const std::vector<SavedAttachment>& attachments) {
  if (attachments.empty()) return {};
  std::string text = "Attachments:";
  for (const SavedAttachment& attachment : attachments) {
    text += "\n- " + attachment.name + " (" + attachment.content_type + ", " +
            byte_size_text(attachment.size) + "): ";
    text += attachment.path.empty() ? "not saved, " + attachment.skipped : attachment.path;
  }
  return text;
}

}  // namespace sb::email
