#pragma once
// Throwaway certificates for the TLS tests, made with the openssl command line: a test CA
// and server certificates it signs (EC P-256, valid ten years). Trust the CA in the client
// under test (ca_file) and give the server its certificate and key.
//
// Usage:
//   TestCertificates certs(dir);                  // CA + a certificate for the loopback
//   certs.ca_cert(), certs.server_cert(), certs.server_key()
//   auto other = certs.issue("other", {"DNS:mail.example.org"});  // a different host
//
// Errors throw std::runtime_error with openssl's output: a test cannot go on without them.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace sb::test {

struct CertificateFiles {
  std::filesystem::path cert;  // PEM
  std::filesystem::path key;   // PEM, unencrypted
};

class TestCertificates {
 public:
  // Makes the CA and a server certificate for localhost, 127.0.0.1 and ::1 (subjectAltName)
  // under `dir`, which must exist and outlive the object.
  explicit TestCertificates(std::filesystem::path dir) : dir_(std::move(dir)) {
    ca_ = {dir_ / "ca.pem", dir_ / "ca.key"};
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "3650", "-subj", "/CN=switchboard test CA", "-keyout", ca_.key.string(),
             "-out", ca_.cert.string(), "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
             "keyUsage=critical,keyCertSign,cRLSign"});
    server_ = issue("server", {"DNS:localhost", "IP:127.0.0.1", "IP:::1"});
  }

  const std::filesystem::path& ca_cert() const { return ca_.cert; }
  const std::filesystem::path& server_cert() const { return server_.cert; }
  const std::filesystem::path& server_key() const { return server_.key; }

  // A further server certificate signed by the same CA, for the given subjectAltName
  // entries ("DNS:name", "IP:address"); files <name>.pem and <name>.key.
  CertificateFiles issue(const std::string& name, std::initializer_list<std::string> alt_names) {
    CertificateFiles files{dir_ / (name + ".pem"), dir_ / (name + ".key")};
    const auto csr = dir_ / (name + ".csr");
    const auto extensions = dir_ / (name + ".ext");
    std::string san;
    for (const auto& alt : alt_names) san += (san.empty() ? "" : ",") + alt;
    std::ofstream(extensions) << "basicConstraints=CA:FALSE\n"
                              << "keyUsage=critical,digitalSignature\n"
                              << "extendedKeyUsage=serverAuth\n"
                              << "subjectAltName=" << san << "\n";
    openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-subj", "/CN=" + name, "-keyout", files.key.string(), "-out", csr.string()});
    openssl({"x509", "-req", "-in", csr.string(), "-CA", ca_.cert.string(), "-CAkey",
             ca_.key.string(), "-CAcreateserial", "-days", "3650", "-extfile", extensions.string(),
             "-out", files.cert.string()});
    return files;
  }

 private:
  void openssl(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log = (dir_ / "openssl.log").string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = -1;
    const int spawned = posix_spawnp(&pid, "openssl", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    int status = 0;
    if (spawned != 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      std::ifstream in(log);
      std::stringstream output;
      output << in.rdbuf();
      throw std::runtime_error("openssl " + args[1] + " failed: " + output.str());
    }
  }

  std::filesystem::path dir_;
  CertificateFiles ca_;
  CertificateFiles server_;
};

}  // namespace sb::test
