// vit-infer CLI: `bench` hands its arguments to the vit-bench harness (benchmarks/vit_bench.cpp),
// which links the CUDA engine's internals and is built only with CUDA. It is looked up next to
// this program (build tree: <build>/benchmarks/vit-bench; installed: <bindir>/vit-bench), then
// on PATH, and replaces this process (exec), so its output and exit status are the user's.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace vitcli {

namespace fs = std::filesystem;

int run_bench(const std::vector<std::string>& args) {
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(self.parent_path() / "benchmarks" / "vit-bench");
    candidates.push_back(self.parent_path() / "vit-bench");
  }
  std::string tried;
  for (const fs::path& p : candidates) {
    tried += "\n  " + p.string();
    if (fs::is_regular_file(p, ec) && access(p.c_str(), X_OK) == 0) {
      std::vector<std::string> storage{p.string()};
      storage.insert(storage.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (std::string& s : storage) argv.push_back(s.data());
      argv.push_back(nullptr);
      execv(p.c_str(), argv.data());
      log_error("cannot run " + p.string() + ": " + std::strerror(errno));
      return kExitFailure;
    }
  }
  // Not beside us: let PATH decide (an installed vit-bench elsewhere).
  std::vector<std::string> storage{"vit-bench"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  execvp("vit-bench", argv.data());
  log_error("vit-bench (the benchmark harness) was not found; it is built only with CUDA "
            "(-DVIT_ENABLE_CUDA=ON). Looked at:" + tried + "\n  $PATH");
  return kExitFailure;
}

}  // namespace vitcli
